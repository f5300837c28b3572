"""Promotional points as worked stories: grants, the draw-down order, expiry, refunds
back to their lots, transfers keeping their expiry, replays returning the stored plan.

Each story states its figures; `assert_ledger_consistent` (which runs verify_ledger's
lot checks) closes every one.
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from divine_whispers.errors import (
    AmountTooLarge,
    IdempotencyKeyReused,
    InsufficientBalance,
    ValidationFailed,
)
from wallet import services
from wallet.models import Allocation, Lot, LotKind, Transaction, TransactionType, Wallet
from wallet.selectors import lot_split
from wallet.services import _lots
from wallet.tests.factories import StaffFactory
from wallet.tests.helpers import assert_ledger_consistent

pytestmark = pytest.mark.django_db


class Clock:
    """Moves `timezone.now()` (what every service reads) forward."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def __call__(self):
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    moving = Clock()
    with mock.patch("django.utils.timezone.now", moving):
        yield moving


@pytest.fixture
def marketer(db):
    return StaffFactory(username="marketer")


def drawn(txn: Transaction) -> list[tuple[str, int]]:
    return [(a.lot.kind, a.amount) for a in _lots.allocations_of(txn)]


def lots_of(user) -> list[tuple[str, int, int]]:
    return [
        (lot.kind, lot.amount, lot.remaining)
        for lot in Lot.objects.filter(wallet__user=user).order_by("id")
    ]


def test_spend_draws_promotional_first_then_paid(user, staff, marketer, clock, fund):
    """Grant 100 expiring tomorrow, deposit 500: a spend of 120 takes 100 promo + 20 paid."""
    from jobs.tests.factories import JobTypeFactory

    JobTypeFactory(code="big", price=120)
    tomorrow = clock.now + timedelta(days=1)
    granted = services.grant(
        user=user, amount=100, reason="Welcome", expires_at=tomorrow, actor=marketer
    )
    fund(user, 500)
    assert (granted.lot.kind, granted.lot.expires_at) == (LotKind.PROMOTIONAL, tomorrow)

    spent, _job = services.spend(user=user, job_type="big", reference_id="s1")

    assert drawn(spent) == [("promotional", 100), ("paid", 20)]
    split = lot_split(wallet_id=spent.wallet_id)
    assert (split.paid, split.promotional, split.expiring) == (480, 0, [])
    assert Wallet.objects.get(user=user).balance == 480
    assert_ledger_consistent()


def test_refund_after_expiry_gives_back_paid_and_expires_the_promotional_share(
    user, staff, marketer, clock, fund
):
    """...and the refund of that spend after the expiry gives back 20 paid points and
    100 promotional points that expire at once, in the same transaction."""
    from jobs.tests.factories import JobTypeFactory

    JobTypeFactory(code="big", price=120)
    services.grant(
        user=user,
        amount=100,
        reason="Welcome",
        expires_at=clock.now + timedelta(days=1),
        actor=marketer,
    )
    fund(user, 500)
    spent, _job = services.spend(user=user, job_type="big")
    clock.advance(days=2)

    refund = services.refund(spend_txn=spent, reason="reading failed", actor=staff).transaction

    assert refund.amount == 120
    expiries = list(Transaction.objects.filter(type=TransactionType.EXPIRY, user=user))
    assert [e.amount for e in expiries] == [-100]
    assert expiries[0].created_at == refund.created_at
    assert Wallet.objects.get(user=user).balance == 500  # 480 + 120 - 100
    paid_lot = Lot.objects.get(wallet__user=user, kind=LotKind.PAID)
    assert paid_lot.remaining == 500
    reissued = Lot.objects.get(source=refund)
    assert (reissued.kind, reissued.amount, reissued.remaining) == ("promotional", 100, 0)
    assert reissued.origin.source.type == TransactionType.GRANT
    assert_ledger_consistent()


def test_expired_lots_are_never_drawn_even_before_the_job(user, marketer, clock, fund):
    from jobs.tests.factories import JobTypeFactory

    JobTypeFactory(code="small", price=30)
    services.grant(
        user=user,
        amount=50,
        reason="Promo",
        expires_at=clock.now + timedelta(hours=1),
        actor=marketer,
    )
    fund(user, 40)
    clock.advance(hours=2)  # the expiry job has not run

    spent, _ = services.spend(user=user, job_type="small")

    assert drawn(spent) == [("paid", 30)]
    (expiry,) = Transaction.objects.filter(type=TransactionType.EXPIRY, user=user)
    assert expiry.amount == -50 and expiry.pk < spent.pk
    assert Wallet.objects.get(user=user).balance == 10
    with pytest.raises(InsufficientBalance):
        services.spend(user=user, job_type="small")
    assert_ledger_consistent()


def test_draw_order_soonest_expiry_first_never_expiring_last_then_oldest(
    user, marketer, clock, fund
):
    soon, late = clock.now + timedelta(days=1), clock.now + timedelta(days=9)
    forever = services.grant(user=user, amount=10, reason="no expiry", actor=marketer).lot
    late_lot = services.grant(user=user, amount=10, reason="late", expires_at=late, actor=marketer)
    soon_lot = services.grant(user=user, amount=10, reason="soon", expires_at=soon, actor=marketer)
    fund(user, 10)
    old_paid = Lot.objects.get(wallet__user=user, kind=LotKind.PAID)
    fund(user, 10)

    order = list(Lot.objects.filter(wallet__user=user).live(clock.now).in_draw_order())

    assert [lot.pk for lot in order[:3]] == [soon_lot.lot.pk, late_lot.lot.pk, forever.pk]
    assert order[3].pk == old_paid.pk and order[4].kind == LotKind.PAID
    result = services.adjust(user=user, amount=-35, reason="correction", actor=marketer)
    assert drawn(result.transaction) == [
        ("promotional", 10),
        ("promotional", 10),
        ("promotional", 10),
        ("paid", 5),
    ]
    assert_ledger_consistent()


def test_transfer_keeps_promotional_points_and_their_expiry(user, other_user, marketer, clock):
    expires = clock.now + timedelta(days=3)
    services.grant(
        user=user, amount=80, reason="Gift", expires_at=expires, campaign="xmas", actor=marketer
    )

    result = services.transfer(sender=user, recipient=other_user, amount=50)

    (carried,) = Lot.objects.filter(wallet__user=other_user)
    assert (carried.kind, carried.amount, carried.expires_at, carried.campaign) == (
        LotKind.PROMOTIONAL,
        50,
        expires,
        "xmas",
    )
    assert carried.source_id == result.credit.pk
    assert drawn(result.debit) == [("promotional", 50)]
    clock.advance(days=4)
    run = services.expire_points()
    assert sorted(row.amount for row in run.rows) == [-50, -30]
    assert Wallet.objects.get(user=other_user).balance == 0
    assert_ledger_consistent()


def test_transfer_spanning_lots_takes_the_general_path(user, other_user, marketer, clock, fund):
    expires = clock.now + timedelta(days=3)
    services.grant(user=user, amount=30, reason="Gift", expires_at=expires, actor=marketer)
    fund(user, 100)

    result = services.transfer(sender=user, recipient=other_user, amount=50)

    assert drawn(result.debit) == [("promotional", 30), ("paid", 20)]
    assert sorted(lots_of(other_user)) == [("paid", 20, 20), ("promotional", 30, 30)]
    assert_ledger_consistent()


def test_replay_returns_the_stored_allocation_across_an_expiry(user, marketer, clock, fund):
    from jobs.tests.factories import JobTypeFactory

    JobTypeFactory(code="small", price=30)
    services.grant(
        user=user,
        amount=50,
        reason="Promo",
        expires_at=clock.now + timedelta(hours=1),
        actor=marketer,
    )
    fund(user, 100)
    first, _ = services.spend(user=user, job_type="small", reference_id="once")
    clock.advance(hours=2)

    again = services.spend(user=user, job_type="small", reference_id="once")

    assert again.replayed and again.transaction.pk == first.pk
    assert drawn(again.transaction) == [("promotional", 30)]
    assert Allocation.objects.filter(transaction=first).count() == 1
    assert_ledger_consistent()


def test_grant_is_idempotent_and_validated(user, marketer, clock):
    expires = clock.now + timedelta(days=1)
    first = services.grant(
        user=user, amount=25, reason="r", expires_at=expires, actor=marketer, reference_id="g1"
    )
    again = services.grant(
        user=user, amount=25, reason="r", expires_at=expires, actor=marketer, reference_id="g1"
    )
    assert again.replayed and (again.transaction.pk, again.lot.pk) == (
        first.transaction.pk,
        first.lot.pk,
    )
    with pytest.raises(IdempotencyKeyReused):
        services.grant(user=user, amount=26, reason="r", actor=marketer, reference_id="g1")
    for bad in (0, -5, 1.5, "10", True, None):
        with pytest.raises(ValidationFailed):
            services.grant(user=user, amount=bad, reason="r", actor=marketer)
    with pytest.raises(AmountTooLarge):
        services.grant(user=user, amount=10**12, reason="r", actor=marketer)
    with pytest.raises(ValidationFailed):
        services.grant(user=user, amount=5, reason="r", actor=marketer, expires_at=clock.now)
    with pytest.raises(ValidationFailed):
        services.grant(user=user, amount=5, reason="", actor=marketer)
    assert Transaction.objects.filter(type=TransactionType.GRANT).count() == 1
    assert_ledger_consistent()


def test_large_grant_waits_for_a_second_person(user, marketer, settings, clock):
    settings.WALLET_APPROVAL_THRESHOLD = 1000
    approver = StaffFactory(username="approver")
    expires = clock.now + timedelta(days=5)

    asked = services.grant(
        user=user,
        amount=5000,
        reason="VIP",
        expires_at=expires,
        campaign="vip",
        actor=marketer,
        reference_id="vip-1",
    )

    assert isinstance(asked, services.ApprovalResult)
    assert (asked.approval.kind, asked.approval.grant_expires_at) == ("grant", expires)
    assert not Transaction.objects.filter(type=TransactionType.GRANT).exists()
    decision = services.approve_adjustment(approval=asked.approval.pk, actor=approver)
    assert decision.transaction.type == TransactionType.GRANT
    lot = Lot.objects.get(source=decision.transaction)
    assert (lot.kind, lot.amount, lot.expires_at, lot.campaign) == (
        "promotional",
        5000,
        expires,
        "vip",
    )
    assert_ledger_consistent()


def test_partial_refunds_give_back_the_last_drawn_lot_first(user, staff, marketer, clock, fund):
    from jobs.tests.factories import JobTypeFactory

    JobTypeFactory(code="big", price=120)
    services.grant(
        user=user,
        amount=100,
        reason="Promo",
        expires_at=clock.now + timedelta(days=1),
        actor=marketer,
    )
    fund(user, 500)
    spent, _ = services.spend(user=user, job_type="big")

    first = services.refund(spend_txn=spent, amount=30, reason="part", actor=staff).transaction
    second = services.refund(spend_txn=spent, amount=90, reason="rest", actor=staff).transaction

    assert drawn(first) == [("paid", 20), ("promotional", 10)]
    assert drawn(second) == [("promotional", 90)]
    assert sorted(lots_of(user)) == [("paid", 500, 500), ("promotional", 100, 100)]
    assert_ledger_consistent()


def test_an_unexplained_lot_is_a_finding(user, marketer, clock):
    from django.db import connection

    from wallet.verification import verify_ledger

    services.grant(user=user, amount=40, reason="Promo", actor=marketer)
    assert verify_ledger().clean
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wallet_lot SET remaining = remaining - 1 WHERE wallet_id = "
            "(SELECT id FROM wallet_wallet WHERE user_id = %s)",
            [user.pk],
        )

    report = verify_ledger()

    assert {f.check for f in report.findings} == {"lot_balance", "lot"}


def test_a_second_expiry_row_for_a_lot_is_refused_by_the_database(user, marketer, clock):
    from django.db import IntegrityError, transaction

    services.grant(
        user=user,
        amount=40,
        reason="Promo",
        expires_at=clock.now + timedelta(hours=1),
        actor=marketer,
    )
    clock.advance(hours=2)
    (row,) = services.expire_points().rows
    lot = Lot.objects.get(wallet__user=user)
    assert (row.reference_id, row.amount, lot.remaining) == (f"lot:{lot.pk}", -40, 0)
    assert services.expire_points().rows == []

    wallet = Wallet.objects.get(user=user)
    duplicate = Transaction(
        wallet=wallet,
        user=user,
        type=TransactionType.EXPIRY,
        amount=-1,
        balance_after=0,
        reference_id=row.reference_id,
        created_at=clock.now,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.bulk_create([duplicate])
    assert_ledger_consistent()


def test_spend_covered_by_the_first_of_20_lots_stays_two_statements(
    user, marketer, clock, fund, django_assert_num_queries
):
    """The fast path draws from the first lot in its one guarded statement (the two others
    are the test's savepoint); a spend spanning lots takes the general path."""
    from jobs.tests.factories import JobTypeFactory

    JobTypeFactory(code="small", price=30)
    fund(user, 1000)
    for day in range(1, 20):
        services.grant(
            user=user,
            amount=40,
            reason="Promo",
            expires_at=clock.now + timedelta(days=day),
            actor=marketer,
        )
    with django_assert_num_queries(4):
        first, _ = services.spend(user=user, job_type="small")
    assert drawn(first) == [("promotional", 30)]
    soonest = Lot.objects.filter(wallet__user=user).live(clock.now).in_draw_order().first()
    assert soonest.remaining == 10

    second, _ = services.spend(user=user, job_type="small")  # 10 + 20: two lots

    assert drawn(second) == [("promotional", 10), ("promotional", 20)]
    assert_ledger_consistent()
