"""Read-only proof that every point is explained by the ledger: the wallet's invariants.

Each balance equals the sum of its wallet's successful transactions, each row's
`balance_after` follows from the one before, transfers are pairs netting to zero,
refunds never exceed their spend, every wallet's debt is what its clawbacks owe minus the
clawback rows booked, every ledger row has exactly one audit event that agrees with it,
each wallet's recorded audit head is its chain's newest event, and its lots explain its
balance (each debit's allocations sum to its amount, each lot expired at most once).
The checks are SQL aggregations / window functions that return only the rows that are
wrong, so the database does the per-wallet work and memory stays bounded.

`verify_ledger()` (what `manage.py verify_ledger` runs) adds these checks to the audit
trail's own (`audit.verification`: the hash chains and checkpoints), all on one
read-only snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import connection

from audit.models import AuditEvent
from audit.verification import (
    DEFAULT_CHUNK_SIZE,
    WALLET_CHAIN_PREFIX,
    Check,
    Finding,
    Report,
    check_named_chain_heads,
    run_verification,
)
from wallet.models import Allocation, Lot, Transaction, TransactionStatus, TransactionType, Wallet
from wallet.models.purchases import Clawback

OPERATION_ACTIONS = tuple(f"wallet.{t.value}" for t in TransactionType)


# --- SQL helpers --------------------------------------------------------------------


def _tables() -> dict[str, str]:
    return {
        "txn": Transaction._meta.db_table,
        "wallet": Wallet._meta.db_table,
        "event": AuditEvent._meta.db_table,
        "lot": Lot._meta.db_table,
        "allocation": Allocation._meta.db_table,
    }


def _differs(left: str, right: str) -> str:
    """NULL-safe inequality in the current database's dialect."""
    if connection.vendor == "sqlite":
        return f"{left} IS NOT {right}"
    return f"{left} IS DISTINCT FROM {right}"


def _rows(sql: str, params: tuple = ()) -> Iterator[tuple]:
    """Rows of a query that returns only problems (small), fetched in batches."""
    with connection.cursor() as cursor:
        cursor.execute(sql.format(**_tables()), params)
        while batch := cursor.fetchmany(500):
            yield from batch


# --- Ledger checks (SQL does the per-wallet aggregation) ----------------------------


def balance_differences(*, include_negative: bool = False) -> Iterator[tuple[int, int, int]]:
    """(wallet id, cached balance, ledger sum) of every wallet whose two disagree.

    One grouped query; the database aggregates per wallet and returns only the wallets
    that are wrong, so this is cheap in memory however large the ledger is.
    """
    negative = " OR w.balance < 0" if include_negative else ""
    sql = f"""
        SELECT w.id, w.balance, COALESCE(s.total, 0)
        FROM {{wallet}} w
        LEFT JOIN (SELECT wallet_id, SUM(amount) AS total FROM {{txn}}
                   WHERE status = %s GROUP BY wallet_id) s ON s.wallet_id = w.id
        WHERE w.balance <> COALESCE(s.total, 0){negative}
        ORDER BY w.id
    """
    for wallet_id, balance, total in _rows(sql, (TransactionStatus.SUCCESS,)):
        yield wallet_id, balance, int(total)


def check_balances() -> Iterator[Finding]:
    """Each wallet's cached balance equals the sum of its successful transactions."""
    for wallet_id, balance, total in balance_differences(include_negative=True):
        if balance != total:
            yield Finding(
                "balance",
                f"wallet {wallet_id}: balance differs from the sum of its successful transactions",
                wallet_id=wallet_id,
                expected=total,
                found=balance,
            )
        if balance < 0:
            yield Finding(
                "negative_balance",
                f"wallet {wallet_id}: negative balance",
                wallet_id=wallet_id,
                expected=">= 0",
                found=balance,
            )


def check_balance_after_chains() -> Iterator[Finding]:
    """Per wallet, in id order: each successful row's balance_after = previous + amount.

    Row ids are drawn while the wallet is locked, so id order is the order in which the
    wallet's balance moved. Checking each link (not a running total) names the one row
    whose amount or balance_after was changed instead of every row after it.
    """
    sql = """
        SELECT id, wallet_id, amount, balance_after, prev_after FROM (
            SELECT id, wallet_id, amount, balance_after,
                   COALESCE(LAG(balance_after) OVER (PARTITION BY wallet_id ORDER BY id), 0)
                       AS prev_after
            FROM {txn} WHERE status = %s
        ) chained
        WHERE balance_after <> prev_after + amount OR balance_after < 0
        ORDER BY wallet_id, id
    """
    for txn_id, wallet_id, amount, balance_after, prev_after in _rows(
        sql, (TransactionStatus.SUCCESS,)
    ):
        yield Finding(
            "balance_after",
            f"wallet {wallet_id}, transaction {txn_id}: balance_after is not the previous "
            f"balance_after ({prev_after}) plus the amount ({amount:+d})",
            wallet_id=wallet_id,
            transaction_id=txn_id,
            expected=prev_after + amount,
            found=balance_after,
        )


def check_transfer_pairs() -> Iterator[Finding]:
    """Every transfer_id has exactly one transfer_out and one transfer_in, summing to 0."""
    sql = """
        SELECT transfer_id, COUNT(*), SUM(amount), MIN(id), MIN(wallet_id)
        FROM {txn} WHERE transfer_id IS NOT NULL
        GROUP BY transfer_id
        HAVING COUNT(*) <> 2 OR SUM(amount) <> 0
            OR SUM(CASE WHEN type = %s THEN 1 ELSE 0 END) <> 1
            OR SUM(CASE WHEN type = %s THEN 1 ELSE 0 END) <> 1
            OR COUNT(DISTINCT wallet_id) <> 2 OR COUNT(DISTINCT status) <> 1
        ORDER BY MIN(id)
    """
    params = (TransactionType.TRANSFER_OUT, TransactionType.TRANSFER_IN)
    for transfer_id, rows, total, first_id, wallet_id in _rows(sql, params):
        members = list(
            Transaction.objects.filter(transfer_id=transfer_id)
            .order_by("id")
            .values_list("id", "wallet_id", "type", "amount", "status")[:10]
        )
        described = ", ".join(f"#{i} wallet {w} {t} {a:+d} {s}" for i, w, t, a, s in members)
        yield Finding(
            "transfer_pair",
            f"wallet {wallet_id}, transaction {first_id}: transfer {transfer_id} is not one "
            f"transfer_out/transfer_in pair netting to zero ({described})",
            wallet_id=wallet_id,
            transaction_id=first_id,
            transfer_id=str(transfer_id),
            expected="2 rows (out + in, two wallets, same status) summing to 0",
            found=f"{rows} row(s) summing to {int(total)}",
        )


def check_refunds() -> Iterator[Finding]:
    """Successful refunds of a spend never exceed it and stay in the spend's wallet."""
    sql = """
        SELECT s.id, s.wallet_id, s.type, s.status, s.amount, SUM(r.amount),
               SUM(CASE WHEN r.wallet_id <> s.wallet_id THEN 1 ELSE 0 END)
        FROM {txn} r JOIN {txn} s ON s.id = r.related_transaction_id
        WHERE r.type = %s AND r.status = %s
        GROUP BY s.id, s.wallet_id, s.type, s.status, s.amount
        HAVING s.type <> %s OR s.status <> %s OR SUM(r.amount) > -s.amount
            OR SUM(CASE WHEN r.wallet_id <> s.wallet_id THEN 1 ELSE 0 END) > 0
        ORDER BY s.id
    """
    success, spend = TransactionStatus.SUCCESS, TransactionType.SPEND
    params = (TransactionType.REFUND, success, spend, success)
    for spend_id, wallet_id, txn_type, status, amount, refunded, foreign in _rows(sql, params):
        refundable = -amount if (txn_type == spend and status == success) else 0
        if foreign:
            yield Finding(
                "refund",
                f"wallet {wallet_id}, transaction {spend_id}: refunded into another wallet",
                wallet_id=wallet_id,
                transaction_id=spend_id,
                expected="refunds in the spend's wallet",
                found=f"{foreign} refund(s) in other wallets",
            )
        if refunded > refundable:
            yield Finding(
                "refund",
                f"wallet {wallet_id}, transaction {spend_id} ({txn_type}, {status}): "
                "refunded more than is refundable",
                wallet_id=wallet_id,
                transaction_id=spend_id,
                expected=f"<= {refundable}",
                found=int(refunded),
            )


def check_debts() -> Iterator[Finding]:
    """Each debt is its wallet's clawbacks owed minus its clawback rows, never negative."""
    for wallet_id, debt, expected in Clawback.objects.debt_differences():
        yield Finding(
            "debt",
            f"wallet {wallet_id}: debt disagrees with its clawbacks",
            wallet_id=wallet_id,
            expected=f"clawbacks owed minus clawback rows = {expected}, never negative",
            found=debt,
        )


def check_operation_events() -> Iterator[Finding]:
    """Exactly one `wallet.<type>` audit event per ledger row, and it agrees with the row."""
    missing_sql = """
        SELECT t.id, t.wallet_id, t.type, COUNT(e.id)
        FROM {txn} t
        LEFT JOIN {event} e ON e.transaction_id = t.id AND e.action = 'wallet.' || t.type
        GROUP BY t.id, t.wallet_id, t.type
        HAVING COUNT(e.id) <> 1
        ORDER BY t.id
    """
    for txn_id, wallet_id, txn_type, events in _rows(missing_sql):
        yield Finding(
            "operation_event",
            f"wallet {wallet_id}, transaction {txn_id}: wrong number of wallet.{txn_type} "
            "audit events",
            wallet_id=wallet_id,
            transaction_id=txn_id,
            expected=1,
            found=events,
        )
    placeholders = ", ".join(["%s"] * len(OPERATION_ACTIONS))
    mismatch_sql = f"""
        SELECT e.id, e.action, e.wallet_id, e.amount, e.balance_after,
               t.id, t.type, t.wallet_id, t.amount, t.balance_after
        FROM {{event}} e LEFT JOIN {{txn}} t ON t.id = e.transaction_id
        WHERE e.action IN ({placeholders}) AND (
            t.id IS NULL OR e.action <> 'wallet.' || t.type
            OR {_differs("e.wallet_id", "t.wallet_id")}
            OR {_differs("e.amount", "t.amount")}
            OR {_differs("e.balance_after", "t.balance_after")})
        ORDER BY e.id
    """
    for row in _rows(mismatch_sql, OPERATION_ACTIONS):
        event_id, action, e_wallet, e_amount, e_after = row[:5]
        txn_id, t_type, t_wallet, t_amount, t_after = row[5:]
        expected = {
            "action": f"wallet.{t_type}" if t_type else None,
            "wallet_id": t_wallet,
            "amount": t_amount,
            "balance_after": t_after,
        }
        found = {
            "action": action,
            "wallet_id": e_wallet,
            "amount": e_amount,
            "balance_after": e_after,
        }
        yield Finding(
            "event_mismatch",
            f"wallet {t_wallet if t_wallet is not None else e_wallet}, transaction {txn_id}, "
            f"audit event {event_id} ({action}): the event disagrees with its ledger row",
            wallet_id=t_wallet if t_wallet is not None else e_wallet,
            transaction_id=txn_id,
            event_id=event_id,
            expected={k: v for k, v in expected.items() if found[k] != v},
            found={k: v for k, v in found.items() if expected[k] != v},
        )


# --- Lots: where each point is, and what each debit drew ---------------------------


def check_lot_balances() -> Iterator[Finding]:
    """Each wallet's unused lot amounts sum to its balance: to its ledger sum, so that an
    edited cached balance is one finding (`balance`) and an edited lot another."""
    sql = """
        SELECT w.id, COALESCE(s.total, 0), COALESCE(l.total, 0) FROM {wallet} w
        LEFT JOIN (SELECT wallet_id, SUM(remaining) AS total FROM {lot} GROUP BY wallet_id) l
               ON l.wallet_id = w.id
        LEFT JOIN (SELECT wallet_id, SUM(amount) AS total FROM {txn}
                   WHERE status = %s GROUP BY wallet_id) s ON s.wallet_id = w.id
        WHERE COALESCE(s.total, 0) <> COALESCE(l.total, 0) ORDER BY w.id
    """
    for wallet_id, balance, total in _rows(sql, (TransactionStatus.SUCCESS,)):
        yield Finding(
            "lot_balance",
            f"wallet {wallet_id}: the unused amounts of its lots do not sum to its balance",
            wallet_id=wallet_id,
            expected=int(balance),
            found=int(total),
        )


def check_allocations() -> Iterator[Finding]:
    """Every successful row since the wallet had lots is explained by lots to the point:
    a debit's allocations sum to its amount; a credit's new lots and the points it gave
    back to lots sum to its amount. (Rows before a wallet's opening lot have none.)"""
    sql = """
        SELECT t.id, t.wallet_id, t.amount, COALESCE(a.total, 0) + COALESCE(n.total, 0)
        FROM {txn} t
        LEFT JOIN (SELECT transaction_id, SUM(amount) AS total FROM {allocation}
                   GROUP BY transaction_id) a ON a.transaction_id = t.id
        LEFT JOIN (SELECT source_id, SUM(amount) AS total FROM {lot} WHERE NOT opening
                   GROUP BY source_id) n ON n.source_id = t.id
        LEFT JOIN (SELECT wallet_id, MAX(COALESCE(source_id, 0)) AS cut FROM {lot}
                   WHERE opening GROUP BY wallet_id) o ON o.wallet_id = t.wallet_id
        WHERE (t.status = %s AND t.id > COALESCE(o.cut, 0)
               AND COALESCE(a.total, 0) + COALESCE(n.total, 0) <> ABS(t.amount))
           OR (t.status <> %s AND COALESCE(a.total, 0) + COALESCE(n.total, 0) <> 0)
        ORDER BY t.id
    """
    success = TransactionStatus.SUCCESS
    for txn_id, wallet_id, amount, total in _rows(sql, (success, success)):
        yield Finding(
            "allocation",
            f"wallet {wallet_id}, transaction {txn_id}: its lots and allocations do not "
            "sum to its amount",
            wallet_id=wallet_id,
            transaction_id=txn_id,
            expected=abs(amount),
            found=int(total),
        )


def check_lots() -> Iterator[Finding]:
    """Each lot's remainder is its amount less what debits drew plus what refunds gave
    back, all in its own wallet; it expired at most once, not before its expiry, and
    nothing but its expiry drew from it once it had expired."""
    sql = """
        SELECT l.id, l.wallet_id, l.remaining,
               l.amount + COALESCE(SUM(CASE WHEN t.amount < 0 THEN -a.amount
                                            ELSE a.amount END), 0),
               SUM(CASE WHEN t.type = %s THEN 1 ELSE 0 END),
               SUM(CASE WHEN t.type = %s AND t.created_at < l.expires_at
                        OR t.type <> %s AND t.amount < 0 AND t.created_at >= l.expires_at
                        OR t.wallet_id <> l.wallet_id THEN 1 ELSE 0 END)
        FROM {lot} l
        LEFT JOIN {allocation} a ON a.lot_id = l.id
        LEFT JOIN {txn} t ON t.id = a.transaction_id
        GROUP BY l.id, l.wallet_id, l.remaining, l.amount
        HAVING l.remaining <> l.amount + COALESCE(SUM(CASE WHEN t.amount < 0 THEN -a.amount
                                                           ELSE a.amount END), 0)
            OR SUM(CASE WHEN t.type = %s THEN 1 ELSE 0 END) > 1
            OR SUM(CASE WHEN t.type = %s AND t.created_at < l.expires_at
                        OR t.type <> %s AND t.amount < 0 AND t.created_at >= l.expires_at
                        OR t.wallet_id <> l.wallet_id THEN 1 ELSE 0 END) > 0
        ORDER BY l.id
    """
    expiry = TransactionType.EXPIRY
    for lot_id, wallet_id, remaining, expected, expiries, wrong in _rows(sql, (expiry,) * 6):
        yield Finding(
            "lot",
            f"wallet {wallet_id}, lot {lot_id}: remainder {remaining}, expected {expected}; "
            f"expired {expiries} time(s); {wrong} misplaced draw(s)",
            wallet_id=wallet_id,
            expected={"remaining": int(expected), "expiries": "<= 1", "misplaced": 0},
            found={"remaining": remaining, "expiries": expiries, "misplaced": wrong},
        )


# --- Audit heads: each wallet's recorded head is its chain's newest event ---------------


def check_chain_heads() -> Iterator[Finding]:
    """The newest event of each chain is the head recorded on its wallet / head row.

    Together with the links this proves each chain end to end: from the genesis event
    (empty prev_hash) to the head the writers last recorded, so dropping the newest
    events of a chain is detected too.
    """
    sql = """
        SELECT w.id, w.audit_head, e.id, e.hash
        FROM {wallet} w
        LEFT JOIN (SELECT chain, MAX(id) AS last_id FROM {event} GROUP BY chain) l
               ON l.chain = 'wallet:' || w.id
        LEFT JOIN {event} e ON e.id = l.last_id
        WHERE COALESCE(e.hash, '') <> w.audit_head
        ORDER BY w.id
    """
    for wallet_id, head, last_id, last_hash in _rows(sql):
        yield Finding(
            "audit_head",
            f"wallet {wallet_id}: audit_head is not the hash of the chain's newest event "
            f"({'event ' + str(last_id) if last_id else 'no events'})",
            wallet_id=wallet_id,
            event_id=last_id,
            chain=f"{WALLET_CHAIN_PREFIX}{wallet_id}",
            expected=last_hash or "",
            found=head,
        )
    yield from check_named_chain_heads()


# --- Orchestration ------------------------------------------------------------------

LEDGER_CHECKS: tuple[Check, ...] = (
    ("balances", check_balances),
    ("balance_after chains", check_balance_after_chains),
    ("transfer pairs", check_transfer_pairs),
    ("refunds", check_refunds),
    ("debts", check_debts),
    ("operation events", check_operation_events),
    ("lot balances", check_lot_balances),
    ("allocations", check_allocations),
    ("lots", check_lots),
    ("audit heads", check_chain_heads),
)


def _counts() -> dict[str, int]:
    return {"wallets": Wallet.objects.count(), "transactions": Transaction.objects.count()}


def verify_ledger(
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
    stream: Any = None,
    checkpoint: dict[str, dict[str, Any]] | None = None,
) -> Report:
    """Every ledger check and the audit chains on one consistent snapshot; never writes,
    never locks.

    `checkpoint` ({chain: {"length", "head"}}, see `audit.verification.parse_checkpoint`)
    adds the proof that every chain still holds the recorded head at the recorded
    position. The report's own `checkpoint` describes this snapshot, for the next run.
    """
    return run_verification(
        LEDGER_CHECKS,
        counts=_counts,
        chunk_size=chunk_size,
        progress=progress,
        stream=stream,
        checkpoint=checkpoint,
    )
