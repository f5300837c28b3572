"""Concurrency with real threads, each on its own PostgreSQL connection.

These assert invariants (exactly-once effects, balance = ledger sum, never
negative, no deadlock reaching a caller), never timings.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from divine_whispers.errors import DomainError, InsufficientBalance, RefundExceedsOriginal
from jobs.models import Job
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, TransactionType, Wallet
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, run_concurrently

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Velocity is tested elsewhere; here it would only hide the races under test.
    pytest.mark.usefixtures("no_velocity_limit"),
]


@pytest.fixture
def no_velocity_limit():
    with override_settings(WALLET_VELOCITY_LIMIT=10**6):
        yield


def _fund(user, amount: int, staff) -> None:
    services.deposit(
        user=user, amount=amount, reference_id=f"seed-{user.pk}", actor=payment_account()
    )


def test_32_threads_spending_on_one_wallet_never_overdraw():
    staff = StaffFactory()
    owner = UserFactory()
    JobTypeFactory(code="fortune", price=30)
    initial = 500  # floor(500 / 30) = 16 successes out of 32 attempts
    _fund(owner, initial, staff)

    results = run_concurrently(lambda i: services.spend(user=owner, job_type="fortune"), 32)

    successes = [r for r in results if not isinstance(r, BaseException)]
    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(f, InsufficientBalance) for f in failures), failures
    assert len(successes) == initial // 30
    wallet = Wallet.objects.get(user=owner)
    assert wallet.balance == initial - 30 * len(successes) >= 0
    assert Job.objects.filter(user=owner).count() == len(successes)
    assert_ledger_consistent()


def test_opposite_transfers_do_not_deadlock_and_conserve_the_total():
    staff = StaffFactory()
    alice, bob = UserFactory(), UserFactory()
    _fund(alice, 1000, staff)
    _fund(bob, 1000, staff)

    def move(i: int):
        if i % 2:
            return services.transfer(sender=alice, recipient=bob, amount=7)
        return services.transfer(sender=bob, recipient=alice, amount=5)

    results = run_concurrently(move, 32)

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []  # no deadlock (or anything else) reached a caller
    balances = dict(Wallet.objects.values_list("user_id", "balance"))
    assert balances[alice.pk] + balances[bob.pk] == 2000
    assert balances[alice.pk] == 1000 - 16 * 7 + 16 * 5
    assert_ledger_consistent()


def test_concurrent_partial_refunds_never_over_refund():
    staff = StaffFactory()
    owner = UserFactory()
    JobTypeFactory(code="tarot", price=100)
    _fund(owner, 100, staff)
    spend_txn, _ = services.spend(user=owner, job_type="tarot")

    results = run_concurrently(
        lambda i: services.refund(spend_txn=spend_txn, amount=30, reason=f"r{i}", actor=staff), 10
    )

    refunds = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refunds) == 3  # 3 × 30 ≤ 100 < 4 × 30
    assert all(isinstance(r, RefundExceedsOriginal) for r in refused), refused
    refunded = sum(
        Transaction.objects.filter(type=TransactionType.REFUND).values_list("amount", flat=True)
    )
    assert refunded == 90 <= 100
    assert_ledger_consistent()


@pytest.mark.parametrize("operation", ["deposit", "spend", "transfer"])
def test_ten_identical_requests_racing_have_exactly_one_effect(operation):
    staff = StaffFactory()
    owner, friend = UserFactory(), UserFactory()
    JobTypeFactory(code="fortune", price=10)
    _fund(owner, 1000, staff)
    payer = payment_account()
    calls = {
        "deposit": lambda: services.deposit(
            user=owner, amount=25, reference_id="same-key", actor=payer
        ),
        "spend": lambda: services.spend(user=owner, job_type="fortune", reference_id="same-key"),
        "transfer": lambda: services.transfer(
            sender=owner, recipient=friend, amount=25, reference_id="same-key"
        ),
    }

    results = run_concurrently(lambda i: calls[operation](), 10)

    assert not [r for r in results if isinstance(r, BaseException)]
    assert sum(1 for r in results if not r.replayed) == 1
    assert Transaction.objects.filter(reference_id="same-key").count() == 1
    assert_ledger_consistent()


def test_first_time_wallet_creation_races_without_errors():
    newcomer, payer = UserFactory(), payment_account()
    results = run_concurrently(
        lambda i: services.deposit(user=newcomer, amount=1, reference_id=f"p{i}", actor=payer),
        12,
    )
    assert not [r for r in results if isinstance(r, (BaseException, DomainError))]
    assert Wallet.objects.filter(user=newcomer).count() == 1
    assert Wallet.objects.get(user=newcomer).balance == 12
    assert_ledger_consistent()
