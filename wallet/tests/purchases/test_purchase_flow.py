"""A purchase end to end against localstripe: started through the API, paid with a test
card, credited by the signed webhook exactly once whatever arrives how often."""

from __future__ import annotations

import json

import pytest

from wallet.models import Purchase, Transaction, TransactionType, Wallet
from wallet.services import _provider
from wallet.tests.payments import deliver, event_body, pay
from wallet.verification import verify_ledger

pytestmark = pytest.mark.django_db


def _purchases(user) -> list[Transaction]:
    return list(Transaction.objects.filter(user=user, type=TransactionType.PURCHASE))


def _clean() -> None:
    report = verify_ledger()
    assert report.clean, [f.line() for f in report.findings]


def test_start_returns_the_contract_fields_and_credits_nothing(start, user, package):
    purchase = start("buy-1")
    assert set(purchase) == {
        "id", "package", "points", "amount", "currency", "status", "client_secret",
        "provider", "provider_payment_id", "created_at",
    }  # fmt: skip
    assert purchase["package"] == "starter"
    assert (purchase["points"], purchase["amount"], purchase["currency"]) == (1000, 999, "usd")
    assert purchase["status"] == "pending"
    assert purchase["provider_payment_id"].startswith("pi_")
    assert purchase["client_secret"].startswith(purchase["provider_payment_id"])
    payment = _provider.fetch_payment(purchase["provider_payment_id"])
    assert payment.amount == 999 and payment.metadata["purchase_id"] == str(purchase["id"])
    assert Wallet.objects.for_user(user.pk).balance == 0


def test_paid_purchase_is_credited_once_for_five_deliveries(start, user, client):
    purchase = start("buy-2")
    intent = pay(purchase["provider_payment_id"])
    assert intent["status"] == "succeeded"
    body = event_body("payment_intent.succeeded", intent)
    for _ in range(5):
        response = deliver(client, body)
        assert response.status_code == 200, response.content
    rows = _purchases(user)
    assert [r.amount for r in rows] == [1000]
    assert rows[0].reference_id == purchase["provider_payment_id"]
    from wallet.models import Lot

    lots = Lot.objects.filter(source=rows[0])
    assert [(lot.kind, lot.amount, lot.remaining, lot.expires_at) for lot in lots] == [
        ("paid", 1000, 1000, None)
    ]
    assert Wallet.objects.for_user(user.pk).balance == 1000
    assert Purchase.objects.get(pk=purchase["id"]).status == "paid"
    event_id = json.loads(body)["id"]
    from wallet.models import ProviderEvent

    stored = ProviderEvent.objects.get(event_id=event_id)
    assert (stored.deliveries, stored.status) == (5, "processed")
    _clean()


def test_two_event_ids_for_one_payment_credit_once(start, user, client):
    purchase = start()
    intent = pay(purchase["provider_payment_id"])
    for _ in range(2):
        assert deliver(client, event_body("payment_intent.succeeded", intent)).status_code == 200
    assert [r.amount for r in _purchases(user)] == [1000]
    _clean()


def test_succeeded_arriving_before_the_post_returned(buyer_client, package, stripe_local,
                                                      user, client, monkeypatch):  # fmt: skip
    """The provider pays and notifies before start_purchase stored the payment id: the
    webhook finds the purchase by the id in the PaymentIntent's metadata."""
    real_create = _provider.create_payment
    deliveries = []

    def create_then_pay_and_notify(**kwargs):
        payment = real_create(**kwargs)
        intent = pay(payment.id)
        deliveries.append(deliver(client, event_body("payment_intent.succeeded", intent)))
        return payment

    monkeypatch.setattr(_provider, "create_payment", create_then_pay_and_notify)
    response = buyer_client.post("/api/v1/purchases", {"package": "starter"}, format="json")
    assert response.status_code == 201, response.content
    assert deliveries[0].status_code == 200
    body = response.json()["purchase"]
    assert body["status"] == "paid" and body["provider_payment_id"].startswith("pi_")
    assert [r.amount for r in _purchases(user)] == [1000]
    assert Wallet.objects.for_user(user.pk).balance == 1000
    _clean()


def test_replayed_reference_returns_the_same_purchase(start, buyer_client):
    first = start("same-ref")
    response = buyer_client.post(
        "/api/v1/purchases", {"package": "starter", "reference_id": "same-ref"}, format="json"
    )
    assert response.status_code == 200 and response["Idempotent-Replayed"] == "true"
    assert response.json()["purchase"]["id"] == first["id"]
    header = buyer_client.post(
        "/api/v1/purchases", {"package": "starter"}, format="json", HTTP_IDEMPOTENCY_KEY="same-ref"
    )
    assert header.status_code == 200 and header.json()["purchase"]["id"] == first["id"]
    assert Purchase.objects.count() == 1


def test_reference_reused_for_another_package(start, buyer_client, package):
    from wallet.models import PointPackage

    PointPackage.objects.create(code="big", name="Big", points=5000, price=3999)
    start("ref-x")
    response = buyer_client.post(
        "/api/v1/purchases", {"package": "big", "reference_id": "ref-x"}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "validation_error"),
        ({"package": ""}, "validation_error"),
        ({"package": 5}, "validation_error"),
        ({"package": True}, "validation_error"),
        ({"package": "nope"}, "validation_error"),
        ({"package": "starter", "reference_id": " x"}, "validation_error"),
        ({"package": "starter", "amount": 1}, "validation_error"),
        ({"package": "retired"}, "inactive_package"),
    ],
)
def test_bad_purchase_input_is_refused_and_records_nothing(buyer_client, package, body, code):
    from wallet.models import PointPackage

    PointPackage.objects.create(code="retired", name="Old", points=10, price=100, active=False)
    response = buyer_client.post("/api/v1/purchases", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert Purchase.objects.count() == 0


def test_provider_down_answers_503_and_webhooks_are_processed_later(
    start, buyer_client, user, client, settings, stripe_local
):
    paid = start("before-outage")
    intent = pay(paid["provider_payment_id"])
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    response = buyer_client.post("/api/v1/purchases", {"package": "starter"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert Purchase.objects.filter(status="paid").count() == 0
    # The webhook is stored (2xx) even though its re-read cannot be done yet ...
    assert deliver(client, event_body("payment_intent.succeeded", intent)).status_code == 200
    assert _purchases(user) == []
    # ... and processed once the provider answers again.
    settings.STRIPE_API_BASE = stripe_local
    from wallet import services

    assert services.process_pending_events() == {"processed": 1}
    assert [r.amount for r in _purchases(user)] == [1000]
    _clean()


def test_failed_and_cancelled_payments(start, client):
    from wallet.tests.payments import cancel

    declined = start()
    intent = pay(declined["provider_payment_id"], card="4000000000000341")
    assert deliver(client, event_body("payment_intent.payment_failed", intent)).status_code == 200
    assert Purchase.objects.get(pk=declined["id"]).status == "failed"
    dropped = start()
    cancel(dropped["provider_payment_id"])
    obj = {"id": dropped["provider_payment_id"], "object": "payment_intent"}
    assert deliver(client, event_body("payment_intent.canceled", obj)).status_code == 200
    assert Purchase.objects.get(pk=dropped["id"]).status == "cancelled"
    assert not Transaction.objects.filter(type="purchase").exists()


def test_a_forged_succeeded_event_credits_nothing(start, user, client):
    """The body says succeeded; the provider, re-read, says it is not paid."""
    purchase = start()
    forged = {"id": purchase["provider_payment_id"], "object": "payment_intent",
              "status": "succeeded", "amount": 999}  # fmt: skip
    assert deliver(client, event_body("payment_intent.succeeded", forged)).status_code == 200
    assert _purchases(user) == []


@pytest.mark.parametrize("kind", ["missing", "wrong", "stale", "garbage"])
def test_bad_signatures_are_refused_recorded_and_credit_nothing(start, user, client, kind):
    from wallet.models import ProviderEvent
    from wallet.tests.payments import signature

    purchase = start()
    body = event_body("payment_intent.succeeded", pay(purchase["provider_payment_id"]))
    sig = {
        "missing": None,
        "wrong": signature(body, "whsec_not_ours"),
        "stale": signature(body, timestamp=int(__import__("time").time()) - 301),
        "garbage": "t=abc,v1=zz",
    }[kind]
    response = deliver(client, body, sig=sig)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    stored = ProviderEvent.objects.get()
    assert (stored.signature_valid, stored.status, stored.event_id) == (
        False, "invalid_signature", None,
    )  # fmt: skip
    assert _purchases(user) == []


def test_the_previous_secret_is_accepted_during_rotation(start, user, client):
    from wallet.tests.payments import PREVIOUS_SECRET

    purchase = start()
    body = event_body("payment_intent.succeeded", pay(purchase["provider_payment_id"]))
    assert deliver(client, body, secret=PREVIOUS_SECRET).status_code == 200
    assert [r.amount for r in _purchases(user)] == [1000]


def test_ignored_event_types_are_stored_and_acknowledged(client, stripe_local):
    from wallet.models import ProviderEvent

    body = event_body("customer.created", {"id": "cus_1", "object": "customer"})
    assert deliver(client, body).status_code == 200
    assert ProviderEvent.objects.get().status == "ignored"


def test_own_purchases_only(start, buyer_client, other_user, client_for):
    mine = start()
    assert buyer_client.get(f"/api/v1/purchases/{mine['id']}").status_code == 200
    other = client_for(other_user)
    assert other.get(f"/api/v1/purchases/{mine['id']}").status_code == 404
    assert other.get("/api/v1/purchases").json()["results"] == []
    listed = buyer_client.get("/api/v1/purchases").json()["results"]
    assert [p["id"] for p in listed] == [mine["id"]]


def test_packages_lists_active_ones(buyer_client, package):
    from wallet.models import PointPackage

    PointPackage.objects.create(code="retired", name="Old", points=10, price=100, active=False)
    response = buyer_client.get("/api/v1/packages")
    assert response.status_code == 200
    assert response.json() == [
        {"code": "starter", "name": "Starter", "points": 1000, "price": 999, "currency": "usd"}
    ]
