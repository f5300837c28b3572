"""Minting controls in the services (so the API, the admin and the commands alike): staff
never deposit, nobody deals with their own wallet, a staff member's wallet needs a
superuser, and the approval threshold counts what one person booked alone — also when
threads race across wallets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from divine_whispers.errors import PermissionRefused, SelfDealingForbidden
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import ApprovalRequest, Transaction, TransactionType, Wallet
from wallet.services import _minting
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot, run_concurrently

pytestmark = pytest.mark.django_db

THRESHOLD = 10_000  # the default WALLET_APPROVAL_THRESHOLD, set explicitly below


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.WALLET_APPROVAL_THRESHOLD = THRESHOLD
    settings.WALLET_APPROVAL_WINDOW_HOURS = 24


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def _booked_alone() -> int:
    rows = Transaction.objects.filter(
        type=TransactionType.ADJUSTMENT, amount__gt=0, approval__isnull=True
    )
    return sum(rows.values_list("amount", flat=True))


# --- deposits -----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["staff", "superuser"])
def test_a_staff_member_never_deposits_even_holding_the_right(user, who):
    actor = StaffFactory(username=who, is_superuser=who == "superuser")
    before = ledger_snapshot()

    with pytest.raises(PermissionRefused):
        services.deposit(user=user, amount=1_000_000, reference_id="pay-x", actor=actor)

    after = ledger_snapshot()
    assert {k: v for k, v in after.items() if k != "audit"} == {
        k: v for k, v in before.items() if k != "audit"
    }
    [event] = _events("wallet.deposit.refused")
    assert (event.actor_id, event.amount, event.metadata["code"]) == (
        actor.pk,
        1_000_000,
        "permission_denied",
    )


def test_the_payment_account_deposits_but_never_into_its_own_wallet(user):
    payer = payment_account()

    services.deposit(user=user, amount=300, reference_id="pay-1", actor=payer)
    with pytest.raises(SelfDealingForbidden):
        services.deposit(user=payer, amount=300, reference_id="pay-2", actor=payer)

    assert Wallet.objects.get(user=user).balance == 300
    assert Wallet.objects.get(user=payer).balance == 0
    assert _events("suspicious.self_dealing")[0].metadata["attempted"] == "wallet.deposit"


# --- self-dealing -------------------------------------------------------------------------


def test_nobody_adjusts_their_own_wallet_even_below_the_threshold():
    finance = StaffFactory(username="fin")
    before = Wallet.objects.count()

    with pytest.raises(SelfDealingForbidden):
        services.adjust(user=finance, amount=500, reason="mine", actor=finance)
    with pytest.raises(SelfDealingForbidden):
        services.adjust(user=finance, amount=50_000, reason="mine", actor=finance)

    assert not Transaction.objects.exists() and not ApprovalRequest.objects.exists()
    assert Wallet.objects.count() == before + 1  # the wallet its refusals are audited on
    assert [e.metadata["reason"] for e in _events("suspicious.self_dealing")] == [
        "own_wallet",
        "own_wallet",
    ]


def test_any_change_to_a_staff_wallet_waits_for_a_superuser_other_than_the_requester():
    fin, fin2, fin3 = (StaffFactory(username=name) for name in ("fin", "fin2", "fin3"))
    root = StaffFactory(username="root", is_superuser=True)

    asked = services.adjust(user=fin2, amount=5, reason="small, still asked", actor=fin)
    assert isinstance(asked, services.ApprovalResult)
    approval = asked.approval

    # The owner approving their own credit (the bypass), a peer, and the owner rejecting.
    with pytest.raises(SelfDealingForbidden):
        services.approve_adjustment(approval=approval.pk, actor=fin2)
    with pytest.raises(SelfDealingForbidden):
        services.approve_adjustment(approval=approval.pk, actor=fin3)
    with pytest.raises(SelfDealingForbidden):
        services.reject_adjustment(approval=approval.pk, actor=fin2, reason="no")
    assert not Transaction.objects.exists()

    decision = services.approve_adjustment(approval=approval.pk, actor=root)

    assert decision.transaction.amount == 5
    assert Wallet.objects.get(user=fin2).balance == 5
    reasons = [e.metadata["reason"] for e in _events("suspicious.self_dealing")]
    assert reasons == ["own_wallet", "staff_wallet", "own_wallet"]
    assert_ledger_consistent()


def test_a_superuser_never_approves_a_request_for_their_own_wallet():
    fin = StaffFactory(username="fin")
    root = StaffFactory(username="root", is_superuser=True)
    approval = services.adjust(user=root, amount=50_000, reason="for root", actor=fin).approval

    with pytest.raises(SelfDealingForbidden):
        services.approve_adjustment(approval=approval.pk, actor=root)


def test_refunds_never_go_into_ones_own_wallet_and_a_staff_wallet_needs_a_superuser():
    JobTypeFactory(code="fortune", price=50)
    support, peer = StaffFactory(username="sup"), StaffFactory(username="peer")
    root = StaffFactory(username="root", is_superuser=True)
    for person in (support, peer):
        services.deposit(user=person, amount=100, reference_id=f"p-{person.pk}", actor=None)
    own = services.spend(user=support, job_type="fortune").transaction
    peers = services.spend(user=peer, job_type="fortune").transaction

    with pytest.raises(SelfDealingForbidden):
        services.refund(spend_txn=own.pk, reason="mine", actor=support)
    with pytest.raises(SelfDealingForbidden):
        services.refund(spend_txn=peers.pk, reason="a colleague", actor=support)
    services.refund(spend_txn=peers.pk, reason="checked by root", actor=root)

    assert Wallet.objects.get(user=support).balance == 50
    assert Wallet.objects.get(user=peer).balance == 100
    assert_ledger_consistent()


# --- the cumulative threshold -------------------------------------------------------------


def test_small_adjustments_by_one_person_reach_the_threshold_together(fund):
    fin = StaffFactory(username="fin")
    customers = [UserFactory() for _ in range(50)]

    results = [
        services.adjust(user=customer, amount=9_999, reason="goodwill", actor=fin)
        for customer in customers
    ]

    booked = [r for r in results if isinstance(r, services.OperationResult)]
    assert len(booked) == 1 and _booked_alone() == 9_999
    assert ApprovalRequest.objects.filter(requested_by=fin).count() == 49
    assert len(_events("suspicious.cumulative_amount")) == 49
    assert _events("approval.requested")[0].metadata["cause"] == "cumulative"


def test_adjustments_by_several_people_into_one_wallet_count_together(user):
    fin, fin2 = StaffFactory(username="fin"), StaffFactory(username="fin2")

    first = services.adjust(user=user, amount=6_000, reason="a", actor=fin)
    second = services.adjust(user=user, amount=4_000, reason="b", actor=fin2)
    other = services.adjust(user=UserFactory(), amount=4_000, reason="c", actor=fin2)

    assert isinstance(first, services.OperationResult)
    assert isinstance(second, services.ApprovalResult)  # the wallet's sum would be 10,000
    assert isinstance(other, services.OperationResult)  # fin2's own sum is 4,000


def test_what_a_second_person_approved_does_not_count_again(user):
    fin, fin2 = StaffFactory(username="fin"), StaffFactory(username="fin2")
    approval = services.adjust(user=user, amount=20_000, reason="big", actor=fin).approval
    services.approve_adjustment(approval=approval.pk, actor=fin2)

    after_fin = services.adjust(user=user, amount=9_999, reason="small", actor=fin)
    after_fin2 = services.adjust(user=UserFactory(), amount=9_999, reason="small", actor=fin2)

    assert isinstance(after_fin, services.OperationResult)
    assert isinstance(after_fin2, services.OperationResult)


def test_the_window_forgets_what_is_older(user, settings):
    fin = StaffFactory(username="fin")
    services.adjust(user=user, amount=9_999, reason="yesterday", actor=fin)
    row = Transaction.objects.get()
    later = row.created_at + timedelta(hours=25)

    assert _minting.booked_alone(requester_id=fin.pk, wallet_id=row.wallet_id, now=later) == (
        _minting.BookedAlone(0, 0)
    )
    assert _minting.booked_alone(
        requester_id=fin.pk, wallet_id=row.wallet_id, now=timezone.now()
    ) == _minting.BookedAlone(9_999, 9_999)


def test_debits_and_approvals_off_are_not_counted(user, fund, settings):
    fin = StaffFactory(username="fin")
    fund(user, 50_000)
    for _ in range(3):
        assert isinstance(
            services.adjust(user=user, amount=-9_999, reason="debit", actor=fin),
            services.OperationResult,
        )
    settings.WALLET_APPROVAL_THRESHOLD = 0
    assert isinstance(
        services.adjust(user=user, amount=500_000, reason="approvals off", actor=fin),
        services.OperationResult,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("target", ["eight_wallets", "one_wallet"])
def test_eight_racing_threads_of_9999_never_pass_the_threshold_together(target):
    fin = StaffFactory(username="fin-racer")
    customers = [UserFactory() for _ in range(8 if target == "eight_wallets" else 1)]

    results = run_concurrently(
        lambda i: services.adjust(
            user=customers[i % len(customers)], amount=9_999, reason="race", actor=fin
        ),
        8,
    )

    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    booked = [r for r in results if isinstance(r, services.OperationResult)]
    assert len(booked) == 1
    assert _booked_alone() == 9_999 < THRESHOLD
    assert ApprovalRequest.objects.count() == 7
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_eight_staff_members_racing_into_one_wallet_never_pass_it_together():
    people = [StaffFactory(username=f"fin-{i}") for i in range(8)]
    customer = UserFactory()

    results = run_concurrently(
        lambda i: services.adjust(user=customer, amount=9_999, reason="race", actor=people[i]),
        8,
    )

    assert not [r for r in results if isinstance(r, BaseException)]
    assert sum(isinstance(r, services.OperationResult) for r in results) == 1
    assert Wallet.objects.get(user=customer).balance == 9_999
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_two_staff_crediting_each_others_customers_never_deadlock():
    """Each adjustment locks the target's and the requester's wallets in one ascending
    statement: criss-crossing requesters and targets cannot wait on each other in a cycle."""
    people = [StaffFactory(username=f"fin-{i}") for i in range(2)]
    customers = [UserFactory() for _ in range(2)]

    results = run_concurrently(
        lambda i: services.adjust(
            user=customers[i % 2], amount=1, reason="criss-cross", actor=people[(i // 2) % 2]
        ),
        16,
    )

    assert not [r for r in results if isinstance(r, BaseException)]
    assert _booked_alone() == 16
    assert_ledger_consistent()


# --- the database's own guards ----------------------------------------------------------


def test_the_database_refuses_a_self_credit_written_past_the_service():
    fin = StaffFactory(username="fin")
    Wallet.objects.ensure_for_users([fin.pk])
    wallet = Wallet.objects.get(user=fin)
    for txn_type in ("adjustment", "deposit"):
        row = Transaction(
            wallet=wallet,
            user=fin,
            type=txn_type,
            amount=5,
            balance_after=5,
            reference_id="raw",
            description="raw",
            actor=fin,
            created_at=timezone.now(),
        )
        with pytest.raises(IntegrityError), transaction.atomic():
            Transaction.objects.bulk_create([row])
    assert not Transaction.objects.exists()


def test_the_database_refuses_a_request_asked_or_decided_by_its_wallets_owner(user):
    fin = StaffFactory(username="fin")
    approval = services.adjust(user=user, amount=50_000, reason="big", actor=fin).approval

    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.filter(pk=approval.pk).update(
            status="rejected", decided_by=user, decided_at=timezone.now(), decision_reason="x"
        )
    Wallet.objects.ensure_for_users([fin.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.create(
            wallet=Wallet.objects.get(user=fin),
            user=fin,
            amount=5,
            reason="raw",
            request_fingerprint="x",
            requested_by=fin,
            expires_at=timezone.now(),
            created_at=timezone.now(),
        )
