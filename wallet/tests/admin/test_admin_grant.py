"""The admin's Grant points flow: a form (amount, reason, campaign, expiry), then a
confirmation page whose button calls services.grant with actor=request.user; only staff
holding wallet.grant_points; the wallet page lists the wallet's lots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from wallet.models import ApprovalRequest, Lot, Transaction, TransactionType, Wallet
from wallet.tests.admin_helpers import (
    confirm_flow,
    logged_in,
    messages_of,
    staff_in_group,
    start_flow,
)
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(db):
    return staff_in_group("finance-agent", "finance")


@pytest.fixture
def wallet(user, fund) -> Wallet:
    fund(user, 100)
    return Wallet.objects.get(user=user)


def grant_url(wallet: Wallet) -> str:
    return reverse("admin:wallet_wallet_grant", args=[wallet.pk])


def test_grant_with_expiry_and_campaign_is_booked_once(finance, wallet):
    client = logged_in(finance)
    expires = timezone.localtime(timezone.now() + timedelta(days=10)).replace(second=0)
    started = start_flow(
        client,
        grant_url(wallet),
        {
            "amount": "150",
            "reason": "Sorry for the outage",
            "campaign": "outage-11",
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert started.status_code == 302, started.content
    page = client.get(started["Location"])
    assert b"150 promotional points" in page.content and b"outage-11" in page.content

    done = confirm_flow(client, started["Location"])
    again = confirm_flow(client, started["Location"])

    assert any("Granted 150 promotional points" in m for m in messages_of(done))
    assert any("already recorded" in m for m in messages_of(again))
    (row,) = Transaction.objects.filter(type=TransactionType.GRANT)
    assert (row.amount, row.actor_id, row.description) == (150, finance.pk, "Sorry for the outage")
    lot = Lot.objects.get(source=row)
    assert (lot.kind, lot.campaign, lot.expires_at.replace(microsecond=0)) == (
        "promotional",
        "outage-11",
        expires.replace(microsecond=0),
    )
    change = client.get(reverse("admin:wallet_wallet_change", args=[wallet.pk]))
    assert b"wallet-lots" in change.content and b"grant-link" in change.content
    assert_ledger_consistent()


@pytest.mark.parametrize(
    "data",
    [
        {"amount": "0", "reason": "r"},
        {"amount": "-5", "reason": "r"},
        {"amount": "1.5", "reason": "r"},
        {"amount": "5", "reason": ""},
        {"amount": "5", "reason": "r", "expires_at": "2001-01-01T00:00"},
        {"amount": "5", "reason": "r", "expires_at": "someday"},
    ],
)
def test_bad_input_is_a_form_error_and_books_nothing(finance, wallet, data):
    before = ledger_snapshot()
    response = start_flow(logged_in(finance), grant_url(wallet), data)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert ledger_snapshot() == before


def test_large_grant_becomes_an_approval_request(finance, wallet, settings):
    settings.WALLET_APPROVAL_THRESHOLD = 100
    client = logged_in(finance)
    started = start_flow(client, grant_url(wallet), {"amount": "500", "reason": "VIP"})
    done = confirm_flow(client, started["Location"])
    assert any("Approval request" in m for m in messages_of(done))
    approval = ApprovalRequest.objects.get()
    assert (approval.kind, approval.amount) == ("grant", 500)
    assert not Transaction.objects.filter(type=TransactionType.GRANT).exists()


def test_support_cannot_grant(wallet):
    client = logged_in(staff_in_group("support-agent", "support"))
    assert client.get(grant_url(wallet)).status_code == 403
    change = client.get(reverse("admin:wallet_wallet_change", args=[wallet.pk]))
    assert b"grant-link" not in change.content


def test_refund_confirmation_says_how_much_expires_at_once(finance, user, fund):
    """Spend 120 = 100 promotional (expired since) + 20 paid: the refund's page says 100
    expire at once, and the balance line counts only the 20."""
    from unittest import mock

    from jobs.tests.factories import JobTypeFactory
    from wallet import services

    JobTypeFactory(code="big", price=120)
    now = timezone.now()
    services.grant(
        user=user, amount=100, reason="p", actor=finance, expires_at=now + timedelta(hours=1)
    )
    fund(user, 500)
    spend, _ = services.spend(user=user, job_type="big")
    client = logged_in(staff_in_group("support-agent", "support"))
    later = now + timedelta(hours=2)
    with mock.patch("django.utils.timezone.now", lambda: later):
        started = start_flow(
            client,
            reverse("admin:wallet_transaction_refund", args=[spend.pk]),
            {"mode": "all", "reason": "reading failed"},
        )
        page = client.get(started["Location"])
    assert b"confirm-expiring" in page.content
    assert b"100 of the 120 points" in page.content
