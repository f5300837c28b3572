"""Refunds and disputes of a purchase against localstripe: proportional clawbacks, debt,
`402 wallet_in_debt`, the next credit paying the debt first, reversals; each exactly once
under redelivery, and verify_ledger clean after every scenario."""

from __future__ import annotations

import pytest

from wallet import services
from wallet.models import Clawback, Purchase, Transaction, Wallet
from wallet.services import _provider
from wallet.tests.payments import DisputeDouble, charge_of, deliver, event_body, pay, refund
from wallet.verification import verify_ledger

pytestmark = pytest.mark.django_db


def _paid(start, client, reference=None) -> dict:
    purchase = start(reference)
    intent = pay(purchase["provider_payment_id"])
    assert deliver(client, event_body("payment_intent.succeeded", intent)).status_code == 200
    return purchase


def _refunded(client, purchase, amount, times=1) -> None:
    refund(purchase["provider_payment_id"], amount)
    obj = {"id": charge_of(purchase["provider_payment_id"]), "object": "charge"}
    body = event_body("charge.refunded", obj)
    for _ in range(times):
        assert deliver(client, body).status_code == 200


def _state(user) -> tuple[int, int]:
    wallet = Wallet.objects.get(user=user)
    return wallet.balance, wallet.debt


def _clean() -> None:
    """verify_ledger (lot sums included) clean."""
    report = verify_ledger()
    assert report.clean, [f.line() for f in report.findings]


def _types(user) -> list[tuple[str, int]]:
    rows = Transaction.objects.filter(user=user).order_by("id")
    return [(r.type, r.amount) for r in rows]


def test_refund_of_30_percent_claws_back_30_percent_once(start, client, user):
    purchase = _paid(start, client)
    _refunded(client, purchase, 300, times=3)  # 300 of 999 cents
    assert _state(user) == (1000 - 300, 0)  # 1000 * 300 // 999 = 300
    assert Purchase.objects.get(pk=purchase["id"]).status == "partially_refunded"
    _refunded(client, purchase, 699)  # the rest: the shares add up to all the points
    assert _state(user) == (0, 0)
    assert Purchase.objects.get(pk=purchase["id"]).status == "refunded"
    assert Clawback.objects.count() == 2
    _clean()


def test_full_refund_after_spending_leaves_debt_and_blocks_spends(
    start, client, user, buyer_client, job_type, other_user
):
    purchase = _paid(start, client)
    spent = buyer_client.post("/api/v1/wallet/spend", {"job_type": "fortune"}, format="json")
    assert spent.status_code == 201
    _refunded(client, purchase, 999, times=2)
    assert _state(user) == (0, 50)  # 950 taken back, 50 owed
    assert Purchase.objects.get(pk=purchase["id"]).status == "refunded"
    _clean()
    refused = buyer_client.post("/api/v1/wallet/spend", {"job_type": "fortune"}, format="json")
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "wallet_in_debt"
    transfer = buyer_client.post(
        "/api/v1/wallet/transfer", {"to_user_id": other_user.pk, "amount": 1}, format="json"
    )
    assert transfer.status_code == 402
    assert transfer.json()["error"]["code"] == "wallet_in_debt"
    # The next purchase pays the debt first, in the same transaction as its credit.
    _paid(start, client)
    assert _state(user) == (950, 0)
    assert _types(user)[-2:] == [("purchase", 1000), ("clawback", -50)]
    assert (
        buyer_client.post(
            "/api/v1/wallet/spend", {"job_type": "fortune"}, format="json"
        ).status_code
        == 201
    )
    _clean()


def test_transfer_to_an_indebted_wallet_pays_its_debt_first(
    start, client, user, other_user, fund, client_for
):
    purchase = _paid(start, client)
    # Spend the points away through a transfer, then refund the purchase in full.
    sender = client_for(user)
    moved = sender.post(
        "/api/v1/wallet/transfer", {"to_user_id": other_user.pk, "amount": 600}, format="json"
    )
    assert moved.status_code == 201
    _refunded(client, purchase, 999)
    assert _state(user) == (0, 600)
    fund(other_user, 1000)
    back = client_for(other_user).post(
        "/api/v1/wallet/transfer", {"to_user_id": user.pk, "amount": 700}, format="json"
    )
    assert back.status_code == 201
    assert _state(user) == (100, 0)
    _clean()


@pytest.fixture
def disputes(monkeypatch) -> DisputeDouble:
    double = DisputeDouble()
    monkeypatch.setattr(_provider, "fetch_dispute", double)
    return double


def test_dispute_opened_then_won_is_reversed_exactly(start, client, user, buyer_client,
                                                     job_type, disputes):  # fmt: skip
    purchase = _paid(start, client)
    buyer_client.post("/api/v1/wallet/spend", {"job_type": "fortune"}, format="json")
    charge = charge_of(purchase["provider_payment_id"])
    opened = disputes.set("dp_1", charge, 999, "needs_response")
    for _ in range(3):
        deliver(client, event_body("charge.dispute.created", opened))
    assert _state(user) == (0, 50)
    assert Purchase.objects.get(pk=purchase["id"]).status == "disputed"
    _clean()
    won = disputes.set("dp_1", charge, 999, "won")
    for _ in range(3):
        deliver(client, event_body("charge.dispute.closed", won))
    assert _state(user) == (950, 0)  # exactly where it was before the dispute
    assert Purchase.objects.get(pk=purchase["id"]).status == "paid"
    assert [t for t, _ in _types(user)].count("clawback_reversal") == 1
    _clean()


def test_dispute_events_out_of_order(start, client, user, disputes):
    """closed(won) delivered before created: the re-read says won, nothing is clawed back."""
    purchase = _paid(start, client)
    charge = charge_of(purchase["provider_payment_id"])
    won = disputes.set("dp_2", charge, 999, "won")
    deliver(client, event_body("charge.dispute.closed", won))
    deliver(client, event_body("charge.dispute.created", won))
    assert _state(user) == (1000, 0)
    _clean()


def test_refund_that_failed_is_reversed_once(start, client, user, monkeypatch):
    purchase = _paid(start, client)
    created = refund(purchase["provider_payment_id"], 999)
    obj = {"id": charge_of(purchase["provider_payment_id"]), "object": "charge"}
    deliver(client, event_body("charge.refunded", obj))
    assert _state(user) == (0, 0)
    failed = _provider.RefundInfo(created["id"], 999, "failed", created["created"])
    monkeypatch.setattr(_provider, "fetch_refund", lambda refund_id: failed)
    body = event_body("refund.failed", {"id": created["id"], "object": "refund"})
    for _ in range(3):
        deliver(client, body)
    assert _state(user) == (1000, 0)
    assert Clawback.objects.get().reversed
    _clean()


def test_refund_arriving_before_succeeded_credits_then_claws_back(start, client, user):
    purchase = start()
    pay(purchase["provider_payment_id"])
    refund(purchase["provider_payment_id"], 500)
    obj = {"id": charge_of(purchase["provider_payment_id"]), "object": "charge"}
    deliver(client, event_body("charge.refunded", obj))
    intent = _provider.fetch_payment(purchase["provider_payment_id"])
    deliver(client, event_body("payment_intent.succeeded", {"id": intent.id}))
    assert _state(user) == (1000 - 500, 0)  # 1000 * 500 // 999 = 500
    assert [t for t, _ in _types(user)] == ["purchase", "clawback"]
    _clean()


def test_clawback_draws_promotional_points_first(start, client, user, staff):
    """A clawback is a debit: it draws from lots in the contract's order."""
    from wallet.models import Lot, LotKind

    purchase = _paid(start, client)
    # A promotional lot beside the paid one (booked as an adjustment row plus its lot).
    services.adjust(user=user, amount=200, reason="promo for the test", actor=staff)
    Lot.objects.filter(wallet__user=user, source__type="adjustment").update(
        kind=LotKind.PROMOTIONAL
    )
    _refunded(client, purchase, 300)
    lots = {lot.kind: lot.remaining for lot in Lot.objects.filter(wallet__user=user)}
    assert lots == {"promotional": 0, "paid": 900}
    _clean()


def test_staff_refund_claws_back_first_then_refunds_once(start, client, user, staff):
    purchase = _paid(start, client)
    done = services.refund_purchase(purchase_id=purchase["id"], actor=staff)
    assert done.refund.amount == 999 and done.refund.clawback == done.clawback.source_id
    assert _state(user) == (0, 0)
    # Stripe's charge.refunded for that refund, delivered twice: nothing more is taken.
    obj = {"id": charge_of(purchase["provider_payment_id"]), "object": "charge"}
    for _ in range(2):
        deliver(client, event_body("charge.refunded", obj))
    assert _state(user) == (0, 0)
    assert Clawback.objects.count() == 1
    assert Purchase.objects.get(pk=purchase["id"]).status == "refunded"
    _clean()


def test_staff_refund_never_takes_more_than_the_wallet_holds(
    start, client, user, staff, buyer_client, job_type
):
    from divine_whispers.errors import InsufficientBalance

    purchase = _paid(start, client)
    buyer_client.post("/api/v1/wallet/spend", {"job_type": "fortune"}, format="json")
    with pytest.raises(InsufficientBalance):
        services.refund_purchase(purchase_id=purchase["id"], actor=staff)
    assert _state(user) == (950, 0) and Clawback.objects.count() == 0
    assert _provider.fetch_charge(charge_of(purchase["provider_payment_id"])).amount_refunded == 0
