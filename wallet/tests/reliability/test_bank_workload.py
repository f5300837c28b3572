"""Jepsen-style bank workload: random transfers between 8 wallets holding a fixed total.

8 writer threads move money both ways between random pairs while 4 reader threads
read every balance — one query per wallet — inside a single REPEATABLE READ
transaction. Each snapshot must sum to the total and hold no negative balance, and
the only error a writer may see is `insufficient_balance` (never a deadlock or a
serialization failure: the services retry those, and lock in a global order).
"""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection, connections, transaction

from divine_whispers.errors import InsufficientBalance
from wallet import services
from wallet.models import Wallet
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.reliability.invariants import assert_all_invariants

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_velocity_limit")]

WALLETS = 8
PER_WALLET = 1_000
TOTAL = WALLETS * PER_WALLET
WRITERS, READERS = 8, 4


def _snapshot(wallet_ids: list[int]) -> tuple[list[int], int]:
    """Balances read one by one, plus the ledger sum, all in one REPEATABLE READ snapshot."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        balances = []
        for wallet_id in wallet_ids:
            cursor.execute("SELECT balance FROM wallet_wallet WHERE id = %s", [wallet_id])
            balances.append(cursor.fetchone()[0])
        cursor.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM wallet_transaction "
            "WHERE wallet_id = ANY(%s) AND status = 'success'",
            [wallet_ids],
        )
        ledger_total = cursor.fetchone()[0]
    return balances, ledger_total


def run_bank_workload(transfers_per_writer: int, reads_per_reader: int) -> dict:
    users = [UserFactory() for _ in range(WALLETS)]
    for user in users:
        services.deposit(
            user=user, amount=PER_WALLET, reference_id=f"bank-{user.pk}", actor=payment_account()
        )
    wallet_ids = list(
        Wallet.objects.filter(user__in=users).order_by("id").values_list("id", flat=True)
    )

    errors: list[BaseException] = []
    bad_reads: list[tuple[list[int], int]] = []
    counts = {"transfers": 0, "refused": 0, "reads": 0}
    lock = threading.Lock()
    start = threading.Barrier(WRITERS + READERS)

    def writer(index: int) -> None:
        rng = random.Random(index)
        try:
            start.wait(timeout=30)
            for _ in range(transfers_per_writer):
                sender, recipient = rng.sample(users, 2)  # random pairs: both directions
                try:
                    services.transfer(
                        sender=sender, recipient=recipient, amount=rng.randint(1, 400)
                    )
                    outcome = "transfers"
                except InsufficientBalance:
                    outcome = "refused"
                with lock:
                    counts[outcome] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def reader(index: int) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(reads_per_reader):
                balances, ledger_total = _snapshot(wallet_ids)
                with lock:
                    counts["reads"] += 1
                    if sum(balances) != TOTAL or ledger_total != TOTAL or min(balances) < 0:
                        bad_reads.append((balances, ledger_total))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    connection.close()

    assert errors == [], errors  # no deadlock or serialization failure reached a caller
    assert bad_reads == [], bad_reads[:5]
    final = list(Wallet.objects.filter(id__in=wallet_ids).values_list("balance", flat=True))
    assert sum(final) == TOTAL and min(final) >= 0
    assert_all_invariants()
    return counts


def test_bank_workload_conserves_the_total_in_every_snapshot():
    counts = run_bank_workload(transfers_per_writer=25, reads_per_reader=40)
    assert counts["transfers"] > 0 and counts["reads"] == READERS * 40


@pytest.mark.stress
def test_bank_workload_conserves_the_total_in_every_snapshot_stress():
    counts = run_bank_workload(transfers_per_writer=1_000, reads_per_reader=1_500)
    assert counts["transfers"] > 0
