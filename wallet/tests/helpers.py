"""Invariant checks and thread helpers shared by the test suites."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection, connections
from django.db.models import Count, Sum

from audit.models import AuditEvent
from wallet.models import Transaction, TransactionType, Wallet

OPERATION_ACTIONS = {f"wallet.{t.value}" for t in TransactionType}


def ledger_snapshot() -> dict[str, Any]:
    """Everything a failed operation must leave untouched.

    Empty wallets are left out: creating a user's 0-point wallet on first touch moves
    no money (a new user "has a wallet with 0" by contract).
    """
    from jobs.models import Job

    return {
        "balances": dict(Wallet.objects.exclude(balance=0).values_list("id", "balance")),
        "transactions": Transaction.objects.count(),
        "jobs": list(Job.objects.order_by("id").values_list("id", "status")),
        "audit": AuditEvent.objects.count(),
    }


def assert_ledger_consistent() -> None:
    """balance = ledger sum, never negative, transfer pairs net zero, one audit per row."""
    sums = dict(
        Transaction.objects.successful()
        .values("wallet_id")
        .annotate(total=Sum("amount"))
        .values_list("wallet_id", "total")
    )
    for wallet_id, balance in Wallet.objects.values_list("id", "balance"):
        assert balance >= 0, f"wallet {wallet_id} negative: {balance}"
        assert balance == sums.get(wallet_id, 0), (
            f"wallet {wallet_id}: balance {balance} != ledger {sums.get(wallet_id, 0)}"
        )
    pairs = (
        Transaction.objects.exclude(transfer_id=None)
        .values("transfer_id")
        .annotate(total=Sum("amount"), rows=Count("id"))
    )
    for pair in pairs:
        assert pair["total"] == 0 and pair["rows"] == 2, pair
    audited = (
        AuditEvent.objects.filter(action__in=OPERATION_ACTIONS)
        .values("transaction_id")
        .annotate(n=Count("id"))
    )
    per_txn = {row["transaction_id"]: row["n"] for row in audited}
    for txn_id in Transaction.objects.values_list("id", flat=True):
        assert per_txn.get(txn_id) == 1, f"transaction {txn_id} has {per_txn.get(txn_id)} events"
    assert_lots_consistent()


def assert_lots_consistent() -> None:
    """The lots explain every balance: verify_ledger's lot checks find nothing."""
    from wallet.verification import check_allocations, check_lot_balances, check_lots

    findings = [*check_lot_balances(), *check_allocations(), *check_lots()]
    assert not findings, "\n".join(f.line() for f in findings[:20])


def run_concurrently(worker: Callable[[int], Any], count: int) -> list[Any]:
    """Run `worker(i)` in `count` real threads released together, each on its own
    connection (closed in `finally`). Returns each result or the exception raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = worker(index)
        except BaseException as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    connection.close()
    return results
