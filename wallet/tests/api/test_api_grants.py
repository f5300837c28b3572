"""Grants and the balance split over HTTP: `POST /api/v1/admin/users/{id}/grants` and
`GET /api/v1/wallet/balance` (paid, promotional, expiring)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from wallet import services
from wallet.models import ApprovalRequest, Lot, Transaction, TransactionType
from wallet.tests.api_helpers import (
    BAD_AMOUNT_IDS,
    BAD_AMOUNT_LITERALS,
    body_with,
    error_of,
    post_raw,
    staff_in,
)
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/wallet/balance"


def grants_url(user_id) -> str:
    return f"/api/v1/admin/users/{user_id}/grants"


@pytest.fixture
def finance(db):
    return staff_in("finance", "fin")


@pytest.fixture
def as_finance(finance, client_for):
    return client_for(finance)


def test_grant_books_a_promotional_lot_and_replays(as_finance, user, client_for):
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    body = {
        "amount": 250,
        "reason": "Welcome bonus",
        "expires_at": expires.isoformat(),
        "campaign": "welcome-2026",
        "reference_id": "welcome-1",
    }

    first = as_finance.post(grants_url(user.pk), body, format="json")
    again = as_finance.post(grants_url(user.pk), body, format="json")

    assert first.status_code == 201, first.content
    data = first.json()
    assert data["transaction"]["type"] == "grant" and data["transaction"]["amount"] == 250
    lot = data["lot"]
    assert (lot["kind"], lot["amount"], lot["remaining"], lot["campaign"]) == (
        "promotional",
        250,
        250,
        "welcome-2026",
    )
    assert lot["source_transaction_id"] == data["transaction"]["id"]
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["lot"]["id"] == lot["id"]
    assert Transaction.objects.filter(type=TransactionType.GRANT).count() == 1

    balance = client_for(user).get(BALANCE).json()
    assert (balance["balance"], balance["paid"], balance["promotional"]) == (250, 0, 250)
    (entry,) = balance["expiring"]
    assert entry["amount"] == 250
    assert datetime.fromisoformat(entry["expires_at"]) == expires
    assert_ledger_consistent()


def test_balance_lists_expiries_soonest_first(user, client_for, fund, staff):
    now = timezone.now()
    for days, amount in ((9, 5), (2, 7), (None, 11)):
        services.grant(
            user=user,
            amount=amount,
            reason="r",
            actor=staff,
            expires_at=None if days is None else now + timedelta(days=days),
        )
    fund(user, 100)

    balance = client_for(user).get(BALANCE).json()

    assert (balance["balance"], balance["paid"], balance["promotional"]) == (123, 100, 23)
    assert [e["amount"] for e in balance["expiring"]] == [7, 5]


@pytest.mark.parametrize(("literal", "code"), BAD_AMOUNT_LITERALS, ids=BAD_AMOUNT_IDS)
def test_bad_amounts_are_refused_and_change_nothing(as_finance, user, literal, code):
    before = ledger_snapshot()
    text = body_with({"reason": "r"}, amount=literal)
    status, got = error_of(post_raw(as_finance, grants_url(user.pk), text))
    assert (status, got) == (400, code)
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 5},  # no reason
        {"amount": 5, "reason": ""},
        {"amount": 5, "reason": "r", "expires_at": "2001-01-01T00:00:00Z"},  # past
        {"amount": 5, "reason": "r", "expires_at": "tomorrow"},
        {"amount": 5, "reason": "r", "expires_at": 12},
        {"amount": 5, "reason": "r", "campaign": "x" * 101},
        {"amount": 5, "reason": "r", "campaign": 7},
        {"amount": 5, "reason": "r", "surprise": 1},
    ],
)
def test_bad_fields_are_400(as_finance, user, body):
    before = ledger_snapshot()
    assert error_of(as_finance.post(grants_url(user.pk), body, format="json")) == (
        400,
        "validation_error",
    )
    assert ledger_snapshot() == before


def test_unknown_user_is_404_and_support_is_refused(as_finance, user, client_for):
    status, code = error_of(as_finance.post(grants_url(10**9), {"amount": 5, "reason": "r"}))
    assert (status, code) == (404, "not_found")
    support = client_for(staff_in("support", "sup"))
    refused = support.post(grants_url(user.pk), {"amount": 5, "reason": "r"}, format="json")
    assert error_of(refused) == (403, "permission_denied")
    assert AuditEvent.objects.filter(action="api.permission_denied").count() == 1
    customer = client_for(user).post(grants_url(user.pk), {"amount": 5, "reason": "r"})
    assert error_of(customer)[0] == 403
    assert not Lot.objects.filter(kind="promotional").exists()


def test_grant_past_the_threshold_is_202_and_approved_by_another(
    as_finance, user, settings, client_for
):
    settings.WALLET_APPROVAL_THRESHOLD = 1000
    response = as_finance.post(
        grants_url(user.pk), {"amount": 5000, "reason": "VIP", "reference_id": "v"}, format="json"
    )
    assert response.status_code == 202, response.content
    approval = response.json()["approval"]
    assert (approval["kind"], approval["status"], approval["amount"]) == ("grant", "pending", 5000)
    approver = client_for(staff_in("finance", "fin2"))
    decided = approver.post(f"/api/v1/admin/approvals/{approval['id']}/approve", {}, format="json")
    assert decided.status_code == 201, decided.content
    assert decided.json()["transaction"]["type"] == "grant"
    assert ApprovalRequest.objects.get().status == "approved"
    assert Lot.objects.get(source_id=decided.json()["transaction"]["id"]).kind == "promotional"
    assert_ledger_consistent()


def test_points_granted_and_expired_are_counted_in_metrics(
    client, settings, user, staff, django_capture_on_commit_callbacks
):
    from unittest import mock

    from divine_whispers.tests.metrics_helpers import samples, value

    settings.METRICS_TOKEN = "metrics-test-token-0123456789"
    settings.METRICS_ALLOWED_IPS = []

    def scrape() -> dict:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
        return samples(response.content.decode())

    points = "divine_whispers_points_total"
    before = scrape()
    now = timezone.now()
    services.grant(
        user=user, amount=70, reason="r", actor=staff, expires_at=now + timedelta(hours=1)
    )
    with (
        mock.patch("django.utils.timezone.now", lambda: now + timedelta(hours=2)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        (row,) = services.expire_points().rows
    after = scrape()

    assert row.amount == -70
    assert value(after, points, type="grant") - value(before, points, type="grant") == 70
    assert value(after, points, type="expiry") - value(before, points, type="expiry") == 70
