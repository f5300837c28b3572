"""Crash injection: a process killed with SIGKILL in the middle of a money operation.

A child process runs one spend, transfer or refund with a crash point armed
(divine_whispers/faults.py). It stops there — holding the wallet lock, its rows written but not
committed — and the test kills it with SIGKILL, the way an OOM kill or a power cut
would. Afterwards nothing partial may persist (no row, no job, no audit event, no
balance change), every invariant must hold, and retrying with the same reference must
apply the operation exactly once. At the `committed` point the process dies after its
commit but before answering: the retry must then replay, not apply a second time.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction

from divine_whispers.db import faults
from jobs.models import Job, JobStatus
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, Wallet
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import ledger_snapshot
from wallet.tests.reliability.invariants import assert_all_invariants

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_velocity_limit")]

REACH_TIMEOUT = 120  # seconds for the child to start Django and reach its point
REFERENCE = "crash-ref-1"


class Child:
    """A child process running one operation with a crash point armed."""

    def __init__(self, point: str, spec: dict, path: str = "fast") -> None:
        env = {**os.environ, faults.CRASH_POINT_ENV: point}
        if path == "general":
            # Every amount counts as "large": the spend fast path declines (it never
            # flags) and the general path, with its finer crash points, runs instead.
            env["WALLET_LARGE_AMOUNT_THRESHOLD"] = "1"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wallet.tests.reliability.crash_child",
                connection.settings_dict["NAME"],
                json.dumps(spec),
            ],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")  # EOF

    def wait_for(self, point: str) -> None:
        line = self.lines.get(timeout=REACH_TIMEOUT)
        if not line.startswith(f"{faults.REACHED_MARKER} {point}"):
            self.proc.kill()
            raise AssertionError(f"child did not reach {point}: {line!r} {self.proc.stderr.read()}")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL


def wallet_is_locked(user) -> bool:
    """Whether another session holds the wallet's row lock right now."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM wallet_wallet WHERE user_id = %s FOR UPDATE NOWAIT", [user.pk]
            )
    except OperationalError as exc:
        assert getattr(exc.__cause__, "sqlstate", None) == "55P03", exc  # lock_not_available
        return True
    return False


@pytest.fixture
def world():
    staff = StaffFactory()
    alice, bob = UserFactory(), UserFactory()
    JobTypeFactory(code="crashy", price=40)
    for user in (alice, bob):
        services.deposit(
            user=user, amount=500, reference_id=f"seed-{user.pk}", actor=payment_account()
        )
    spend_txn, _ = services.spend(user=alice, job_type="crashy", reference_id="to-refund")
    return {"staff": staff, "alice": alice, "bob": bob, "spend": spend_txn}


def operation_spec(operation: str, world: dict) -> dict:
    alice = world["alice"].pk
    return {
        "spend": {"user": alice, "job_type": "crashy"},
        "transfer": {"user": alice, "to": world["bob"].pk, "amount": 75},
        "refund": {"spend": world["spend"].pk, "amount": 15, "actor": world["staff"].pk},
    }[operation] | {"operation": operation, "reference_id": REFERENCE}


def retry(spec: dict, world: dict):
    """The caller's retry after the crash, in this process, same reference."""
    if spec["operation"] == "spend":
        result = services.spend(user=spec["user"], job_type="crashy", reference_id=REFERENCE)
        return result.replayed, result.transaction
    if spec["operation"] == "transfer":
        result = services.transfer(
            sender=spec["user"], recipient=spec["to"], amount=75, reference_id=REFERENCE
        )
        return result.replayed, result.debit
    result = services.refund(
        spend_txn=spec["spend"],
        amount=15,
        reason="crash test",
        actor=world["staff"],
        reference_id=REFERENCE,
    )
    return result.replayed, result.transaction


def crash_and_recover(operation: str, point: str, world: dict, path: str = "fast") -> None:
    spec = operation_spec(operation, world)
    before = ledger_snapshot()
    child = Child(point, spec, path)
    child.wait_for(point)
    committed = point == "committed"
    # Mid-transaction the child holds the wallet lock; after its commit it holds nothing,
    # nor before its first statement.
    assert wallet_is_locked(world["alice"]) is not (committed or point == "atomic.begin")
    child.kill()

    if committed:
        assert ledger_snapshot() != before  # the effect is durable…
    else:
        assert ledger_snapshot() == before  # …or there is no trace of it at all
    assert_all_invariants()

    replayed, row = retry(spec, world)
    assert replayed is committed  # applied now, or replayed if it had committed
    replayed_again, again = retry(spec, world)
    assert replayed_again and again.pk == row.pk
    assert Transaction.objects.filter(reference_id=REFERENCE).count() == 1
    alice_balance = Wallet.objects.get(user=world["alice"]).balance
    expected = {"spend": 500 - 40 - 40, "transfer": 500 - 40 - 75, "refund": 500 - 40 + 15}
    assert alice_balance == expected[operation]
    if operation == "refund":
        assert Job.objects.get(transaction=world["spend"]).status == JobStatus.REFUNDED
    assert_all_invariants()


# (operation, crash point, path). A spend or a transfer takes the two-statement fast path
# when it is the plain successful case, else the general path: both are killed mid-way.
ALL_POINTS = [
    ("spend", "spend.locked", "fast"),
    ("spend", "spend.before_commit", "fast"),
    ("spend", "committed", "fast"),
    ("spend", "spend.locked", "general"),
    ("spend", "spend.after_ledger_row", "general"),
    ("spend", "spend.after_job", "general"),
    ("spend", "spend.before_commit", "general"),
    ("transfer", "transfer.locked", "fast"),
    ("transfer", "transfer.before_commit", "fast"),
    ("transfer", "committed", "fast"),
    ("transfer", "transfer.locked", "general"),
    ("transfer", "transfer.after_rows", "general"),
    ("transfer", "transfer.before_commit", "general"),
    ("refund", "refund.locked", "-"),
    ("refund", "refund.after_rows", "-"),
    ("refund", "refund.before_commit", "-"),
    ("refund", "committed", "-"),
    # divine_whispers/db.py, around every operation: before its first statement, and with the
    # COMMIT about to be sent (a SIGKILL there leaves nothing either).
    ("transfer", "atomic.begin", "-"),
    ("spend", "atomic.commit", "fast"),
    ("refund", "atomic.commit", "-"),
]


@pytest.mark.parametrize(("operation", "point", "path"), ALL_POINTS)
def test_sigkill_inside_an_operation_leaves_nothing_partial(world, operation, point, path):
    crash_and_recover(operation, point, world, path)
