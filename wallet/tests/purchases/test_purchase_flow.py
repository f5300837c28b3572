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
    assert Wallet.objects.for_user(user.pk).balance == 1000
    assert Purchase.objects.get(pk=purchase["id"]).status == "paid"
    event_id = json.loads(body)["id"]
    from wallet.models import ProviderEvent

    stored = ProviderEvent.objects.get(event_id=event_id)
    assert (stored.deliveries, stored.status) == (5, "processed")
    _clean()
