"""A populated ledger, raw-SQL tampering and command runners for the integrity tests."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from audit.services import build_wallet_event, record_system_event, save_events
from divine_whispers.errors import InsufficientBalance
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, TransactionStatus, TransactionType, Wallet
from wallet.tests.factories import StaffFactory, UserFactory, payment_account


@dataclass
class Ledger:
    """Handles on a few interesting rows of `populate_ledger()`."""

    alice: Any
    bob: Any
    carol: Any
    staff: Any
    deposit: Transaction
    spend: Transaction
    refund: Transaction
    transfer_out: Transaction
    transfer_in: Transaction
    adjustment: Transaction


def populate_ledger() -> Ledger:
    """Every kind of operation, through the services, plus a refusal and a system event."""
    staff = StaffFactory(username="cashier")
    alice, bob, carol = (UserFactory(username=name) for name in ("alice", "bob", "carol"))
    JobTypeFactory(code="tarot", name="Tarot", price=120)
    deposit = services.deposit(
        user=alice, amount=1000, reference_id="pay-a1", actor=payment_account()
    )
    services.deposit(user=bob, amount=300, reference_id="pay-b1", actor=payment_account())
    spend, _job = services.spend(user=alice, job_type="tarot", reference_id="spend-a1")
    services.spend(user=bob, job_type="tarot")
    refund = services.refund(spend_txn=spend, amount=20, reason="short reading", actor=staff)
    moved = services.transfer(sender=alice, recipient=carol, amount=75, description="gift")
    services.transfer(sender=bob, recipient=alice, amount=30)
    adjustment = services.adjust(user=carol, amount=-5, reason="goodwill reversal", actor=staff)
    with suppress(InsufficientBalance):  # 70 points < 120: an audited refusal
        services.spend(user=carol, job_type="tarot")
    record_system_event(action="jobtype.price_changed", actor=staff, metadata={"code": "tarot"})
    return Ledger(
        alice=alice,
        bob=bob,
        carol=carol,
        staff=staff,
        deposit=deposit.transaction,
        spend=spend,
        refund=refund.transaction,
        transfer_out=moved.debit,
        transfer_in=moved.credit,
        adjustment=adjustment.transaction,
    )


def book_pending(user: Any, amount: int, *, created_at: datetime, reference_id: str) -> int:
    """A `pending` deposit as an integration would write it: no money moves yet.

    Its balance_after is the unchanged balance (a pending row does not count), and it
    gets its `wallet.deposit` event on the wallet's chain like every ledger row.
    """
    with transaction.atomic():
        wallet = Wallet.objects.lock_for_user(user.pk)
        row = Transaction(
            wallet=wallet,
            user_id=user.pk,
            type=TransactionType.DEPOSIT,
            amount=amount,
            status=TransactionStatus.PENDING,
            balance_after=wallet.balance,
            reference_id=reference_id,
            created_at=created_at,
        )
        Transaction.objects.bulk_create([row])
        event = build_wallet_event(
            wallet=wallet,
            action="wallet.deposit",
            transaction_id=row.pk,
            amount=amount,
            balance_before=wallet.balance,
            balance_after=wallet.balance,
        )
        save_events([event])
        Wallet.objects.filter(pk=wallet.pk).update(audit_head=wallet.audit_head)
        return row.pk


def sql(statement: str, params: tuple | list = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@contextmanager
def triggers_disabled(*tables: str) -> Iterator[None]:
    """What a superuser doing maintenance would do: switch the append-only triggers off.

    Deferred foreign-key checks queued earlier in the same transaction would make
    ALTER TABLE fail ("pending trigger events"), so they are run first.
    """
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    for table in tables:
        sql(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
    try:
        yield
    finally:
        for table in tables:
            sql(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')


@dataclass
class CommandRun:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_command(name: str, *args: str) -> CommandRun:
    """Run a management command like the shell would; returns its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code = exc.returncode
        err.write(str(exc))
    return CommandRun(code, out.getvalue(), err.getvalue())


def verify(*args: str) -> CommandRun:
    return run_command("verify_ledger", "--no-progress", *args)
