"""Writing bench/ledger_fill.py's ledger into the scratch database: COPY per batch, then
the wallets' balances and chain heads, the refunded jobs and the identity sequences.

The append-only triggers only refuse UPDATE/DELETE/TRUNCATE, so bulk INSERTs are fine.
Lots are not append-only: a lot written in an earlier batch whose remainder moved since
gets it with one UPDATE per batch (through a temporary table), so the generator keeps
only the lots a wallet can still draw from or give back to.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

TXN_COLUMNS = (
    "id, wallet_id, user_id, type, amount, status, balance_after, reference_id, "
    "request_fingerprint, description, related_transaction_id, transfer_id, actor_id, "
    "created_at, updated_at"
)
EVENT_COLUMNS = (
    "id, chain, action, actor_id, wallet_id, transaction_id, amount, balance_before, "
    "balance_after, request_id, ip, metadata, created_at, key_id, prev_hash, hash"
)
JOB_COLUMNS = (
    "id, user_id, job_type_id, transaction_id, status, points_used, input, error, "
    "attempts, started_at, finished_at, created_at, updated_at"
)
# Attributes of bench/ledger_fill.py's LotState, in this order.
LOT_COLUMNS = (
    "id, wallet_id, kind, amount, remaining, expires_at, campaign, source_id, origin_id, "
    "opening, created_at"
)
_lot_row = operator.attrgetter(*LOT_COLUMNS.split(", "))


@dataclass
class Batch:
    """The rows booked since the last flush, each tuple in its table's column order."""

    txns: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    jobs: list[tuple] = field(default_factory=list)
    allocations: list[tuple] = field(default_factory=list)  # (transaction, lot, amount)
    new_lots: list[Any] = field(default_factory=list)  # LotState, written as they are then
    changed_lots: dict[int, Any] = field(default_factory=dict)  # written, remainder moved


class CopyWriter:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.written = 0

    def _copy(self, table: str, columns: str, rows: Iterable[tuple]) -> None:
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def seed(self, wallet_ids: list[int], staff_id: int, price: int, now: datetime) -> None:
        """One user and an empty wallet per id (user id == wallet id), a staff user with
        no wallet, and the job type the spends buy."""
        users = [(i, "!", False, f"bench{i}", "", "", "", False, True, now) for i in wallet_ids]
        users.append((staff_id, "!", False, "bench-staff", "", "", "", True, True, now))
        columns = "id, password, is_superuser, username, first_name, last_name, email, "
        self._copy("auth_user", columns + "is_staff, is_active, date_joined", users)
        self._copy(
            "wallet_wallet",
            "id, user_id, balance, debt, audit_head, created_at, updated_at",
            [(i, i, 0, 0, "", now, now) for i in wallet_ids],
        )
        self._copy(
            "jobs_jobtype",
            "id, code, name, description, price, active, created_at, updated_at",
            [(1, "fortune", "Fortune", "", price, True, now, now)],
        )
        self.conn.execute(
            "CREATE TEMP TABLE lot_remaining (id bigint PRIMARY KEY, remaining bigint) "
            "ON COMMIT DELETE ROWS"
        )

    def flush(self, batch: Batch) -> None:
        """Write and empty `batch`, in one transaction."""
        self._copy("wallet_transaction", TXN_COLUMNS, batch.txns)
        self._copy("jobs_job", JOB_COLUMNS, batch.jobs)
        self._copy("wallet_lot", LOT_COLUMNS, map(_lot_row, batch.new_lots))
        for lot in batch.new_lots:
            lot.written = True
        self._copy("wallet_allocation", "transaction_id, lot_id, amount", batch.allocations)
        if batch.changed_lots:
            changed = [(lot.id, lot.remaining) for lot in batch.changed_lots.values()]
            self._copy("lot_remaining", "id, remaining", changed)
            self.conn.execute(
                "UPDATE wallet_lot l SET remaining = r.remaining FROM lot_remaining r "
                "WHERE l.id = r.id"
            )
        self._copy("audit_auditevent", EVENT_COLUMNS, batch.events)
        self.written += len(batch.txns)
        batch.txns, batch.events, batch.jobs, batch.allocations = [], [], [], []
        batch.new_lots, batch.changed_lots = [], {}
        self.conn.commit()
        print(f"  {self.written:>9,} transactions written", file=sys.stderr, end="\r")

    def finish(self, wallets: Iterable[tuple[int, int, str]]) -> None:
        """(id, balance, audit head) of every wallet; refunded jobs marked as the refund
        does; identity sequences past the explicit ids; VACUUM ANALYZE."""
        with self.conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE final (id bigint, balance bigint, head text)")
            with cur.copy("COPY final (id, balance, head) FROM STDIN") as copy:
                for row in wallets:
                    copy.write_row(row)
            cur.execute(
                "UPDATE wallet_wallet w SET balance = f.balance, audit_head = f.head "
                "FROM final f WHERE f.id = w.id"
            )
            cur.execute(
                "UPDATE jobs_job j SET status = 'refunded', finished_at = r.at, updated_at = r.at "
                "FROM (SELECT related_transaction_id AS spend_id, MIN(created_at) AS at "
                "      FROM wallet_transaction WHERE type = 'refund' GROUP BY 1) r "
                "WHERE j.transaction_id = r.spend_id"
            )
            tables = ("auth_user", "wallet_wallet", "wallet_transaction", "audit_auditevent")
            tables += ("jobs_job", "jobs_jobtype", "wallet_lot", "wallet_allocation")
            for table in tables:
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"
                )
        self.conn.commit()
        self.conn.autocommit = True
        self.conn.execute("VACUUM ANALYZE")
        print(file=sys.stderr)
