"""Model-based test: random sequences of every money operation against an in-memory model.

Hypothesis drives a `RuleBasedStateMachine` whose rules call the real services on
PostgreSQL (committed transactions, `django_db(transaction=True)`) and predict each
outcome from a plain-Python model of the balances. After every step the invariants
are checked: the database balances equal the model, money is conserved (balances equal
deposits + adjustments − spends + refunds, transfers net zero), no balance is negative,
and every ledger row has exactly one audit event. A failing sequence is shrunk to a
minimal one and printed.

Each example creates its own users, so examples never see each other's wallets.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Count, Sum
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from audit.models import AuditEvent
from divine_whispers.errors import (
    AmountTooLarge,
    IdempotencyKeyReused,
    InsufficientBalance,
    RefundExceedsOriginal,
    ValidationFailed,
)
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, TransactionType, Wallet
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import OPERATION_ACTIONS
from wallet.tests.reliability.invariants import assert_all_invariants

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_velocity_limit")]

USERS = 3
PRICES = {"mb-small": 7, "mb-large": 120}
_machine_ids = itertools.count()


@dataclass
class Call:
    """A successful call that can be replayed (same parameters) or misused (other ones)."""

    operation: str
    kwargs: dict[str, Any]
    altered: dict[str, Any]  # the same reference with one parameter changed
    txn_id: int
    price: int = 0  # for spends: what a refund may give back
    refunded: list[int] = field(default_factory=list)


class LedgerMachine(RuleBasedStateMachine):
    calls = Bundle("calls")
    spends = Bundle("spends")

    def __init__(self) -> None:
        super().__init__()
        tag = next(_machine_ids)
        self.users = [UserFactory(username=f"mb{tag}-u{i}") for i in range(USERS)]
        self.staff = StaffFactory(username=f"mb{tag}-staff")
        self.payer = payment_account()
        # The cumulative approval threshold: what the staff member, and each wallet, got
        # by positive adjustments without a second person (the run stays in one window).
        self.alone_by_staff = 0
        self.alone_into = {user.pk: 0 for user in self.users}
        for code, price in PRICES.items():
            JobTypeFactory(code=code, price=price)
        self.model = {user.pk: 0 for user in self.users}
        self.flows = 0  # money that entered or left the users' wallets from outside
        self.refs = itertools.count()

    # --- helpers ----------------------------------------------------------------------

    def _ref(self, prefix: str) -> str:
        return f"{prefix}-{next(self.refs)}"

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return getattr(services, operation)(**kwargs)

    def _state(self) -> tuple:
        ids = list(self.model)
        return (
            # A first refusal creates the empty wallet: that moves no money.
            dict(
                Wallet.objects.filter(user_id__in=ids)
                .exclude(balance=0)
                .values_list("user_id", "balance")
            ),
            Transaction.objects.filter(user_id__in=ids).count(),
            AuditEvent.objects.filter(wallet__user_id__in=ids).count(),
        )

    # --- rules ------------------------------------------------------------------------

    @rule(target=calls, who=st.integers(0, USERS - 1), amount=st.integers(1, 5000))
    def deposit(self, who: int, amount: int):
        user = self.users[who]
        kwargs = {"user": user, "amount": amount, "reference_id": self._ref("pay")}
        kwargs["actor"] = self.payer
        result = services.deposit(**kwargs)
        assert not result.replayed
        self.model[user.pk] += amount
        self.flows += amount
        return Call("deposit", kwargs, {**kwargs, "description": "other"}, result.transaction.pk)

    @rule(
        targets=(calls, spends),
        who=st.integers(0, USERS - 1),
        code=st.sampled_from(sorted(PRICES)),
        send_price=st.booleans(),
    )
    def spend(self, who: int, code: str, send_price: bool):
        user, price = self.users[who], PRICES[code]
        kwargs = {"user": user, "job_type": code, "reference_id": self._ref("buy")}
        if send_price:
            kwargs["expected_price"] = price
        if self.model[user.pk] < price:
            before = self._state()
            with pytest.raises(InsufficientBalance):
                services.spend(**kwargs)
            assert self._balances_unchanged(before)
            return multiple()
        txn, job = services.spend(**kwargs)
        assert (txn.amount, job.points_used) == (-price, price)
        self.model[user.pk] -= price
        self.flows -= price
        altered = {**kwargs, "job_input": {"question": "another one"}}
        return Call("spend", kwargs, altered, txn.pk, price=price)

    @rule(target=calls, spend=spends, partial=st.one_of(st.none(), st.integers(1, 130)))
    def refund(self, spend: Call, partial: int | None):
        remaining = spend.price - sum(spend.refunded)
        wanted = remaining if partial is None else partial
        owner = spend.kwargs["user"]
        kwargs = {
            "spend_txn": spend.txn_id,
            "amount": partial,
            "reason": "model refund",
            "actor": self.staff,
            "reference_id": self._ref("refund"),
        }
        if wanted <= 0 or wanted > remaining:
            before = self._state()
            with pytest.raises(RefundExceedsOriginal):
                services.refund(**kwargs)
            assert self._state() == before
            return multiple()
        result = services.refund(**kwargs)
        assert result.transaction.amount == wanted
        spend.refunded.append(wanted)
        self.model[owner.pk] += wanted
        self.flows += wanted
        return Call("refund", kwargs, {**kwargs, "reason": "changed mind"}, result.transaction.pk)

    @rule(
        target=calls,
        sender=st.integers(0, USERS - 1),
        offset=st.integers(1, USERS - 1),
        amount=st.integers(1, 2000),
    )
    def transfer(self, sender: int, offset: int, amount: int):
        source, target = self.users[sender], self.users[(sender + offset) % USERS]
        kwargs = {
            "sender": source,
            "recipient": target,
            "amount": amount,
            "reference_id": self._ref("send"),
        }
        if self.model[source.pk] < amount:
            before = self._state()
            with pytest.raises(InsufficientBalance):
                services.transfer(**kwargs)
            assert self._balances_unchanged(before)
            return multiple()
        result = services.transfer(**kwargs)
        assert result.debit.amount + result.credit.amount == 0
        self.model[source.pk] -= amount
        self.model[target.pk] += amount
        return Call("transfer", kwargs, {**kwargs, "description": "other"}, result.debit.pk)

    @rule(
        target=calls,
        who=st.integers(0, USERS - 1),
        amount=st.integers(-3000, 3000).filter(bool),
    )
    def adjust(self, who: int, amount: int):
        user = self.users[who]
        kwargs = {
            "user": user,
            "amount": amount,
            "reason": "model correction",
            "actor": self.staff,
            "reference_id": self._ref("adj"),
        }
        if self.model[user.pk] + amount < 0:
            before = self._state()
            with pytest.raises(InsufficientBalance):
                services.adjust(**kwargs)
            assert self._balances_unchanged(before)
            return multiple()
        threshold = settings.WALLET_APPROVAL_THRESHOLD
        alone = max(self.alone_by_staff, self.alone_into[user.pk])
        if threshold > 0 and amount > 0 and alone + amount >= threshold:
            before = self._state()
            assert isinstance(services.adjust(**kwargs), services.ApprovalResult)
            assert self._balances_unchanged(before)
            return multiple()
        result = services.adjust(**kwargs)
        if amount > 0:
            self.alone_by_staff += amount
            self.alone_into[user.pk] += amount
        self.model[user.pk] += amount
        self.flows += amount
        return Call("adjust", kwargs, {**kwargs, "reason": "another reason"}, result.transaction.pk)

    @rule(call=calls)
    def replay_same_reference(self, call: Call):
        before = self._state()
        result = self._call(call.operation, **call.kwargs)
        assert result.replayed
        first = getattr(result, "transaction", None) or result.debit
        assert first.pk == call.txn_id
        assert self._state() == before

    @rule(call=calls)
    def replay_with_other_parameters(self, call: Call):
        before = self._state()
        with pytest.raises(IdempotencyKeyReused):
            self._call(call.operation, **call.altered)
        assert self._state() == before

    @rule(
        operation=st.sampled_from(["deposit", "transfer", "adjust"]),
        amount=st.sampled_from([0, 1.5, "10", True, None, [], 10**20]),
    )
    def bad_amount(self, operation: str, amount: Any):
        first, second = self.users[0], self.users[1]
        kwargs = {
            "deposit": {
                "user": first,
                "amount": amount,
                "reference_id": "bad",
                "actor": self.payer,
            },
            "transfer": {"sender": first, "recipient": second, "amount": amount},
            "adjust": {"user": first, "amount": amount, "reason": "bad", "actor": self.staff},
        }[operation]
        before = self._state()
        with pytest.raises((ValidationFailed, AmountTooLarge)):
            self._call(operation, **kwargs)
        assert self._state() == before

    # --- invariants (checked after every step) ------------------------------------------

    def _balances_unchanged(self, before: tuple) -> bool:
        """A refusal that is audited adds an event, but never moves money."""
        now = self._state()
        return now[0] == before[0] and now[1] == before[1]

    @invariant()
    def balances_match_the_model(self):
        in_db = dict(
            Wallet.objects.filter(user_id__in=self.model).values_list("user_id", "balance")
        )
        assert {uid: in_db.get(uid, 0) for uid in self.model} == self.model

    @invariant()
    def no_balance_is_negative(self):
        assert not Wallet.objects.filter(user_id__in=self.model, balance__lt=0).exists()

    @invariant()
    def money_is_conserved(self):
        rows = Transaction.objects.successful().filter(user_id__in=self.model)
        by_type = dict(rows.values("type").annotate(t=Sum("amount")).values_list("type", "t"))
        transfers = by_type.get(TransactionType.TRANSFER_OUT, 0) + by_type.get(
            TransactionType.TRANSFER_IN, 0
        )
        assert transfers == 0
        outside = sum(by_type.values()) - transfers
        total = Wallet.objects.filter(user_id__in=self.model).aggregate(t=Sum("balance"))["t"] or 0
        assert total == outside == self.flows == sum(self.model.values())

    @invariant()
    def one_audit_event_per_ledger_row(self):
        rows = Transaction.objects.filter(user_id__in=self.model)
        counts = (
            AuditEvent.objects.filter(transaction__in=rows, action__in=OPERATION_ACTIONS)
            .values("transaction_id")
            .annotate(n=Count("id"))
        )
        per_row = {c["transaction_id"]: c["n"] for c in counts}
        assert per_row == dict.fromkeys(rows.values_list("id", flat=True), 1)


def test_ledger_matches_its_model_under_random_operations():
    run_state_machine_as_test(
        LedgerMachine, settings=hypothesis_settings.get_profile("reliability")
    )
    assert_all_invariants()


@pytest.mark.stress
def test_ledger_matches_its_model_under_random_operations_stress():
    run_state_machine_as_test(
        LedgerMachine, settings=hypothesis_settings.get_profile("reliability-stress")
    )
    assert_all_invariants()
