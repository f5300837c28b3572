"""Approvers racing on one request, with real threads and their own connections: the
adjustment is booked exactly once, every other attempt is 409, nothing is half-done."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from divine_whispers.errors import ApprovalNotPending
from wallet import services
from wallet.models import ApprovalRequest, Transaction, TransactionType, Wallet
from wallet.tests.admin_helpers import staff_in_group
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

APPROVERS = 8


@pytest.fixture
def request_and_approvers():
    owner = UserFactory(username="owner")
    services.deposit(user=owner, amount=1_000, reference_id="pay-1", actor=payment_account())
    requester = staff_in_group("requester", "finance")
    approvers = [staff_in_group(f"approver{i}", "finance") for i in range(APPROVERS)]
    approval = services.adjust(
        user=owner, amount=40_000, reason="Refund of a double payment", actor=requester
    ).approval
    return owner, approval, approvers


def test_approvers_racing_book_the_adjustment_exactly_once(request_and_approvers):
    owner, approval, approvers = request_and_approvers

    results = run_concurrently(
        lambda i: services.approve_adjustment(approval=approval.pk, actor=approvers[i]),
        APPROVERS,
    )

    decisions = [r for r in results if isinstance(r, services.ApprovalDecision)]
    refusals = [r for r in results if isinstance(r, BaseException)]
    assert len(decisions) == 1, results
    assert all(isinstance(r, ApprovalNotPending) for r in refusals), refusals
    assert Transaction.objects.filter(type=TransactionType.ADJUSTMENT).count() == 1
    assert Wallet.objects.get(user=owner).balance == 41_000
    approval.refresh_from_db()
    assert (approval.status, approval.transaction_id) == (
        "approved",
        decisions[0].transaction.pk,
    )
    assert_ledger_consistent()


def test_approve_racing_reject_decides_once(request_and_approvers):
    owner, approval, approvers = request_and_approvers

    def decide(i: int):
        if i % 2:
            return services.approve_adjustment(approval=approval.pk, actor=approvers[i])
        return services.reject_adjustment(approval=approval.pk, actor=approvers[i], reason="no")

    results = run_concurrently(decide, APPROVERS)

    decisions = [r for r in results if isinstance(r, services.ApprovalDecision)]
    assert len(decisions) == 1, results
    assert all(isinstance(r, ApprovalNotPending) for r in results if r not in decisions)
    final = ApprovalRequest.objects.get(pk=approval.pk)
    booked = Transaction.objects.filter(type=TransactionType.ADJUSTMENT).count()
    assert (final.status, booked) in {("approved", 1), ("rejected", 0)}
    assert Wallet.objects.get(user=owner).balance == 1_000 + 40_000 * booked
    assert_ledger_consistent()


def test_without_any_row_lock_the_database_still_books_once(request_and_approvers, monkeypatch):
    """Defence in depth: with the wallet and request locks switched off (the test-only
    switch of divine_whispers/faults.py), racing approvers all read `pending`; the decided-once
    trigger of migration 0005 refuses every decision after the first, which rolls back
    that approver's booking with it."""
    from divine_whispers.db import faults

    owner, approval, approvers = request_and_approvers
    monkeypatch.setattr(faults, "_row_locks_disabled", True)
    assert faults.row_locks_disabled()

    results = run_concurrently(
        lambda i: services.approve_adjustment(approval=approval.pk, actor=approvers[i]),
        APPROVERS,
    )

    decisions = [r for r in results if isinstance(r, services.ApprovalDecision)]
    assert len(decisions) == 1, results
    losers = [r for r in results if r not in decisions]
    # Refused by the database (the trigger), or by the service if it came after the commit.
    assert all(isinstance(r, (IntegrityError, ApprovalNotPending)) for r in losers), losers
    assert Transaction.objects.filter(type=TransactionType.ADJUSTMENT).count() == 1
    assert Wallet.objects.get(user=owner).balance == 41_000
    assert_ledger_consistent()
