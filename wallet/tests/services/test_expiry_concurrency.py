"""Expiry exactly once under real concurrency: two `expire_points` racing, and expiry
racing a spend of the same wallet, each thread on its own connection."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Allocation, Lot, Transaction, TransactionType
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, run_concurrently
from wallet.tests.reliability.invariants import assert_all_invariants

pytestmark = pytest.mark.django_db(transaction=True)


def _granted_wallets(count: int, staff, expires) -> list:
    users = [UserFactory() for _ in range(count)]
    for user in users:
        services.grant(user=user, amount=40, reason="Promo", expires_at=expires, actor=staff)
    return users


def test_two_expiry_runs_racing_book_one_row_per_lot():
    staff = StaffFactory(username="marketer")
    expires = timezone.now() + timedelta(seconds=30)
    users = _granted_wallets(5, staff, expires)
    later = expires + timedelta(hours=1)

    results = run_concurrently(lambda i: services.expire_points(now=later), 2)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(len(r.rows) for r in results) == 5  # one row per lot, whichever run won
    for lot in Lot.objects.filter(wallet__user__in=users):
        rows = Transaction.objects.filter(type=TransactionType.EXPIRY, reference_id=f"lot:{lot.pk}")
        assert [row.amount for row in rows] == [-40]
        assert lot.remaining == 0
    assert_all_invariants()


def test_expiry_racing_spends_never_draws_an_expired_lot(settings):
    settings.WALLET_VELOCITY_LIMIT = 10**6
    staff = StaffFactory(username="marketer")
    JobTypeFactory(code="small", price=10)
    user = UserFactory()
    services.deposit(user=user, amount=100, reference_id="pay", actor=payment_account())
    services.grant(
        user=user,
        amount=40,
        reason="Promo",
        expires_at=timezone.now() + timedelta(milliseconds=300),
        actor=staff,
    )

    def work(index: int):
        if index == 0:
            import time

            time.sleep(0.35)
            return services.expire_points()
        return [services.spend(user=user, job_type="small") for _ in range(4)]

    with override_settings(WALLET_VELOCITY_LIMIT=10**6):
        results = run_concurrently(work, 3)

    assert not [r for r in results if isinstance(r, BaseException)], results
    expiries = Transaction.objects.filter(type=TransactionType.EXPIRY, user=user)
    spent = Transaction.objects.filter(type=TransactionType.SPEND, user=user).count()
    assert expiries.count() <= 1
    assert spent == 8
    # Whatever the interleaving, each promotional point was spent or expired, once.
    promo_spent = (
        Allocation.objects.filter(lot__kind="promotional", transaction__type="spend").aggregate(
            total=Sum("amount")
        )["total"]
        or 0
    )
    assert promo_spent - sum(e.amount for e in expiries) == 40
    assert_ledger_consistent()
    assert_all_invariants()
