"""Model-based test of lots: random grants, deposits, spends, transfers, refunds, expiry
runs and clock moves, with every lot invariant checked after each step.

The machine predicts each debit's allocation from the lots it reads before the call
(promotional first, soonest expiry, never-expiring last, then oldest; expired lots never)
and compares it with what the service stored; after every step verify_ledger's lot checks
(unused amounts = balance, allocations sum to their rows, each lot expired at most once
and never drawn after its expiry) and the ledger's own must hold. The clock is the
services' `timezone.now()`, moved forward by the machine.

Bounded in the default suite; `-m stress` runs many more examples.
"""

from __future__ import annotations

import contextlib
import itertools
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from divine_whispers.errors import InsufficientBalance, RefundExceedsOriginal
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Allocation, Lot, Transaction, Wallet
from wallet.services import _lots
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import assert_lots_consistent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_velocity_limit")]

USERS = 3
_machine_ids = itertools.count()
users = st.integers(min_value=0, max_value=USERS - 1)


class LotsMachine(RuleBasedStateMachine):
    spends = Bundle("spends")

    def __init__(self) -> None:
        super().__init__()
        tag = next(_machine_ids)
        self.now = timezone.now()
        self.clock = mock.patch("django.utils.timezone.now", lambda: self.now)
        self.clock.start()
        self.users = [UserFactory(username=f"lm{tag}-u{i}") for i in range(USERS)]
        self.staff = StaffFactory(username=f"lm{tag}-staff")
        # Deposits are the payment service account's (no staff member may deposit).
        self.payments = payment_account()
        self.job_code = f"lm{tag}"
        JobTypeFactory(code=self.job_code, price=30)
        self.refs = itertools.count()

    def teardown(self) -> None:
        self.clock.stop()

    def _expected_draw(self, user, amount: int) -> list[tuple[int, int]]:
        """The allocation the contract's order gives, from the lots as they are now."""
        plan, left = [], amount
        for lot in Lot.objects.filter(wallet__user=user).live(self.now).in_draw_order():
            take = min(lot.remaining, left)
            plan.append((lot.pk, take))
            left -= take
            if not left:
                break
        return plan

    @staticmethod
    def _stored(txn: Transaction) -> list[tuple[int, int]]:
        return [(a.lot_id, a.amount) for a in Allocation.objects.filter(transaction=txn)]

    @rule(who=users, amount=st.integers(1, 90), hours=st.none() | st.integers(1, 48))
    def grant(self, who, amount, hours):
        expires = None if hours is None else self.now + timedelta(hours=hours)
        result = services.grant(
            user=self.users[who], amount=amount, reason="lm", actor=self.staff, expires_at=expires
        )
        assert (result.lot.kind, result.lot.remaining) == ("promotional", amount)

    @rule(who=users, amount=st.integers(1, 90))
    def deposit(self, who, amount):
        services.deposit(
            user=self.users[who],
            amount=amount,
            reference_id=f"d{next(self.refs)}",
            actor=self.payments,
        )

    @rule(target=spends, who=users)
    def spend(self, who):
        user = self.users[who]
        services.expire_points()  # so the prediction reads the lots a debit can draw
        plan = self._expected_draw(user, 30)
        try:
            txn, _job = services.spend(user=user, job_type=self.job_code)
        except InsufficientBalance:
            assert sum(take for _, take in plan) < 30
            return None
        assert self._stored(txn) == plan
        return txn.pk

    @rule(who=users, to=users, amount=st.integers(1, 60))
    def transfer(self, who, to, amount):
        if who == to:
            return
        services.expire_points()
        plan = self._expected_draw(self.users[who], amount)
        try:
            result = services.transfer(
                sender=self.users[who], recipient=self.users[to], amount=amount
            )
        except InsufficientBalance:
            assert sum(take for _, take in plan) < amount
            return
        assert self._stored(result.debit) == plan
        carried = Lot.objects.filter(source=result.credit).select_related("origin")
        for lot in carried:
            assert (lot.kind, lot.expires_at) == (lot.origin.kind, lot.origin.expires_at)

    @rule(spend_id=spends, amount=st.none() | st.integers(1, 30))
    def refund(self, spend_id, amount):
        if spend_id is None:
            return
        with contextlib.suppress(RefundExceedsOriginal):
            services.refund(spend_txn=spend_id, amount=amount, reason="lm", actor=self.staff)

    @rule()
    def expire(self):
        services.expire_points()
        assert not Lot.objects.due(self.now).filter(wallet__user__in=self.users).exists()

    @rule(hours=st.integers(1, 30))
    def clock_moves(self, hours):
        self.now += timedelta(hours=hours)

    @rule(spend_id=spends)
    def replay_reads_the_stored_plan(self, spend_id):
        if spend_id is None:
            return
        txn = Transaction.objects.get(pk=spend_id)
        stored = self._stored(txn)
        assert [(a.lot_id, a.amount) for a in _lots.allocations_of(txn)] == stored
        assert sum(amount for _, amount in stored) == -txn.amount

    @invariant()
    def lots_explain_every_balance(self):
        assert_lots_consistent()
        for wallet in Wallet.objects.filter(user__in=self.users):
            assert wallet.balance >= 0


def test_lot_invariants_hold_under_random_operations():
    run_state_machine_as_test(LotsMachine, settings=hypothesis_settings.get_profile("reliability"))


@pytest.mark.stress
def test_lot_invariants_hold_under_random_operations_stress():
    run_state_machine_as_test(
        LotsMachine, settings=hypothesis_settings.get_profile("reliability-stress")
    )
