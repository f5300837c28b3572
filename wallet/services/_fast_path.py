"""The two-statement fast path of spends and transfers: its raw SQL and how it is run.

A plain successful spend (or transfer) costs two statements: one locks the wallet(s)
and reserves the new rows' ids, one inserts every row and moves the balances, guarded
by the same rules the general path checks with separate queries. Whenever the guard
refuses, the caller (wallet/services/spending.py, transfers.py) takes the general path
under the same lock. Each statement's text and the order of its parameters are written
together, once, by a `Statement` (wallet/services/_sql.py, with the cursors that send
them). Each debit draws from the wallet's first lot in draw order, in the same
statement, when that lot covers it; otherwise the general path draws
(wallet/services/_lots.py).

Private to the wallet.services package: nothing else may run these statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NotRequired, TypedDict, Unpack

from django.conf import settings
from django.db import connections, models

from divine_whispers.db.faults import row_locks_disabled
from jobs.models import Job, JobType
from wallet.models import (
    VELOCITY_TYPES,
    Allocation,
    Lot,
    LotKind,
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
)
from wallet.services._checks import velocity_window_start
from wallet.services._sql import Prepared, Statement, insert_shape, prepared_cursor

# Types and status are written into the text (constants), so a prepared plan can still
# prove that the partial index txn_velocity applies.
_VELOCITY_TYPES_SQL = ", ".join(f"'{t.value}'" for t in VELOCITY_TYPES)


@dataclass(slots=True)
class SpendLock:
    """What `lock_for_spend` read under the lock."""

    wallet: Wallet
    job_type: JobType
    transaction_id: int
    job_id: int


@dataclass(slots=True)
class TransferLock:
    """What `lock_for_transfer` read under the locks."""

    source: Wallet
    target: Wallet
    debit_id: int
    credit_id: int


# --- the two statements of a spend ---------------------------------------------------------


def lock_for_spend(user_id: int, job_type_code: str) -> SpendLock | None:
    """Lock the user's wallet, read the job type and reserve the new rows' ids: one
    round trip instead of three (job type, wallet lock, user).

    Ids are reserved up front because the audit event's hash covers its
    transaction id, and it must be computed (in Python: the key is not in the
    database) before the rows are written. Returns None when the wallet or the job
    type does not exist, and on SQLite (`make run`; the statements are PostgreSQL's):
    the caller then takes the general path.
    """
    values = {"job_type": job_type_code, "user": user_id}
    rows = _locked_rows(_lock_for_spend_statement(), values, " FOR UPDATE OF w")
    if not rows:
        return None
    db, row = Wallet.objects.db, rows[0]
    wallet = Wallet.from_db(db, ["id", "balance", "audit_head"], row[0:3])
    wallet.user_id = user_id
    job_type = JobType.from_db(db, ["id", "code", "name", "price", "active"], row[3:8])
    return SpendLock(wallet, job_type, transaction_id=row[8], job_id=row[9])


class Guard(TypedDict):
    """What a booking statement writes, and what must hold on the debited wallet first:
    its balance covers `amount`, fewer than `velocity_limit` spends/transfers since
    `velocity_since` (the velocity rule of the settings unless given), and no earlier
    row of the operation's type with `reference_id`."""

    amount: int
    # The debit's ledger row first (then the credit's, for a transfer), their pks set.
    rows: Sequence[models.Model]
    reference_id: str | None
    now: datetime
    velocity_since: NotRequired[datetime]
    velocity_limit: NotRequired[int]


def book_spend(wallet: Wallet, **guard: Unpack[Guard]) -> int | None:
    """Write a spend locked by `lock_for_spend` in one statement, or nothing at all.

    The inserts of `rows` (ledger row, job, audit event; primary keys already set)
    and the conditional debit `balance = balance - amount WHERE balance >= amount`
    run only if the guard holds, with the allocation of the debit to the wallet's
    first live lot in draw order (which must cover it: a debit spread over several
    lots, or a wallet with a lot waiting for its expiry row, takes the general path).
    The statement runs after the wallet lock was taken,
    so its snapshot sees every committed operation on this wallet: the guard is as
    exact as the general path's separate queries.

    Every concrete field of each row is written (a field added to a model later is
    written here too); a primary key left unset is numbered by the database.

    Returns the new balance, or None when the guard refused (the caller then takes
    the general path, which replays, refuses or audits as the contract says).
    """
    row = _book_guarded(wallet, None, TransactionType.SPEND, guard)
    return None if row is None else row[0]


# --- the two statements of a transfer ------------------------------------------------------


def lock_for_transfer(sender_id: int, recipient_id: int) -> TransferLock | None:
    """Lock both wallets in ascending wallet id order and reserve the ids of the two
    ledger rows: one round trip. None when a wallet does not exist yet, or on
    SQLite; the caller then takes the general path."""
    values = {"sender": sender_id, "recipient": recipient_id}
    rows = _locked_rows(_lock_for_transfer_statement(), values, " FOR UPDATE")
    if rows is None or len(rows) != 2:
        return None
    db = Wallet.objects.db
    wallets = {
        row[1]: Wallet.from_db(db, ["id", "user_id", "balance", "audit_head"], row[0:4])
        for row in rows
    }
    debit_id, credit_id = sorted(row[4] for row in rows)
    return TransferLock(
        wallets[sender_id], wallets[recipient_id], debit_id=debit_id, credit_id=credit_id
    )


def book_transfer(source: Wallet, target: Wallet, **guard: Unpack[Guard]) -> tuple[int, int] | None:
    """Write a transfer locked by `lock_for_transfer` in one statement, or nothing.

    The same guard as `book_spend` on the source wallet (the reference among its
    transfer_out rows); then the rows (both ledger rows, both audit events) are
    inserted, the source debited and the target credited, each wallet with its new
    chain head; the points drawn from the source's first lot land in a new lot of
    the target of the same kind and expiry. `source` and `target` carry the heads after
    the events were built.
    Returns (source balance, target balance), or None when the guard refused.
    """
    row = _book_guarded(source, target, TransactionType.TRANSFER_OUT, guard)
    return None if row is None else (row[0], row[1])


def mark_saved(*instances: Any) -> None:
    """Rows the fast path inserted with raw SQL: tell Django they now exist in the
    database, so a later save() updates them instead of inserting a duplicate."""
    for instance in instances:
        instance._state.adding = False
        instance._state.db = Wallet.objects.db


def _locked_rows(statement: Prepared, values: dict[str, Any], lock: str) -> list[tuple] | None:
    """Run a locking statement; None on SQLite (`make run`; the statements are
    PostgreSQL's). `lock` is the clause a test-only switch (divine_whispers/db/faults.py)
    removes to prove the concurrency tests can fail."""
    connection = connections[Wallet.objects.db]
    if connection.vendor != "postgresql":
        return None
    sql = statement.sql.replace(lock, "") if row_locks_disabled() else statement.sql
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, statement.params(values))
        return cursor.fetchall()


def _book_guarded(
    source: Wallet, target: Wallet | None, txn_type: TransactionType, guard: Guard
) -> tuple | None:
    """Run the guarded statement: debit `source` (and credit `target`, if any)."""
    now, reference_id = guard["now"], guard["reference_id"]
    values = {
        "wallet": source.pk,
        "since": guard.get("velocity_since") or velocity_window_start(now),
        "limit": guard.get("velocity_limit", settings.WALLET_VELOCITY_LIMIT),
        "reference": reference_id,
        "amount": guard["amount"],
        "head": source.audit_head,
        "now": now,
    }
    values["debit_row"] = guard["rows"][0].pk
    if target is not None:
        values |= {
            "target": target.pk,
            "target_head": target.audit_head,
            "credit_row": guard["rows"][1].pk,
        }
    connection = connections[Wallet.objects.db]
    shapes, row_params = [], []
    for row in guard["rows"]:
        columns, placeholders, getters = insert_shape(
            type(row), connection.vendor, row.pk is not None
        )
        shapes.append((row._meta.db_table, columns, placeholders))
        row_params.append([get(row, connection) for get in getters])
    reference_type = txn_type.value if reference_id is not None else None
    statement = _book_statement(tuple(shapes), reference_type, target is not None)
    with prepared_cursor(connection) as cursor:
        cursor.execute(statement.sql, statement.params(values, row_params))
        return cursor.fetchone()


# --- the statements' text, each with its parameters --------------------------------------

# The draw order of LotQuerySet.in_draw_order, and its "not expired", in SQL.
_DRAW_ORDER_SQL = (
    f"(kind <> '{LotKind.PROMOTIONAL.value}'), expires_at ASC NULLS LAST, created_at, id"
)
_LIVE_SQL = "(expires_at IS NULL OR expires_at > %s)"


@lru_cache(maxsize=1)
def _lock_for_spend_statement() -> Prepared:
    return (
        Statement()
        .add(
            "SELECT w.id, w.balance, w.audit_head, t.id, t.code, t.name, t.price, t.active,"
            f" nextval(pg_get_serial_sequence('{Transaction._meta.db_table}', 'id')),"
            f" nextval(pg_get_serial_sequence('{Job._meta.db_table}', 'id'))"
            f" FROM {Wallet._meta.db_table} w JOIN {JobType._meta.db_table} t ON t.code = %s",
            "job_type",
        )
        .add(" WHERE w.user_id = %s FOR UPDATE OF w", "user")
        .build()
    )


@lru_cache(maxsize=1)
def _lock_for_transfer_statement() -> Prepared:
    """Both locks first, then the ids. A row's ids must be drawn while every wallet it
    touches is locked: an id drawn before waiting for a lock would be smaller than the
    ids of the operation that held it, and a wallet's rows would then not be in ledger
    order (verify_ledger checks `balance_after` along ascending ids). `held` aggregates
    every locked row, so no `nextval` runs before the last lock is taken."""
    return (
        Statement()
        .add(
            "WITH locked AS MATERIALIZED (SELECT id, user_id, balance, audit_head"
            f" FROM {Wallet._meta.db_table} WHERE user_id IN (%s, %s) ORDER BY id FOR UPDATE),",
            "sender",
            "recipient",
        )
        .add(
            " held AS (SELECT count(*) FROM locked)"
            " SELECT locked.id, user_id, balance, audit_head,"
            f" nextval(pg_get_serial_sequence('{Transaction._meta.db_table}', 'id'))"
            " FROM held, locked ORDER BY locked.id"
        )
        .build()
    )


@lru_cache(maxsize=16)
def _book_statement(
    shapes: tuple[tuple[str, str, str], ...], reference_type: str | None, credit: bool
) -> Prepared:
    """The guarded statement of `book_spend` (debit only) and `book_transfer` (debit
    and credit): a guard, the rows' inserts, then the balance updates."""
    txn_table, wallet_table = Transaction._meta.db_table, Wallet._meta.db_table
    lot_table = Lot._meta.db_table
    statement = Statement().add(
        f"WITH drawn AS (SELECT id, remaining, kind, expires_at, campaign FROM {lot_table}"
        f" WHERE wallet_id = %s AND remaining > 0 AND {_LIVE_SQL}"
        f" ORDER BY {_DRAW_ORDER_SQL} LIMIT 1),",
        "wallet",
        "now",
    )
    statement.add(
        " guard AS (SELECT 1 WHERE"
        f" (SELECT count(*) FROM (SELECT 1 FROM {txn_table}"
        f" WHERE wallet_id = %s AND type IN ({_VELOCITY_TYPES_SQL})"
        f" AND status = '{TransactionStatus.SUCCESS.value}' AND created_at >= %s"
        " LIMIT %s) recent) < %s",
        "wallet",
        "since",
        "limit",
        "limit",
    )
    if reference_type is not None:
        statement.add(
            f" AND NOT EXISTS (SELECT 1 FROM {txn_table} WHERE wallet_id = %s"
            f" AND type = '{TransactionType(reference_type).value}' AND reference_id = %s)",
            "wallet",
            "reference",
        )
    # A wallet that owes a debt is never debited here, and a credit to one must pay its
    # debt first: the guard refuses both, and the general path refuses or repays.
    statement.add(
        f" AND EXISTS (SELECT 1 FROM {wallet_table} WHERE id = %s AND balance >= %s"
        " AND debt = 0)"
        # One live lot covers the debit, and no lot is waiting for its expiry row.
        " AND EXISTS (SELECT 1 FROM drawn WHERE remaining >= %s)"
        f" AND NOT EXISTS (SELECT 1 FROM {lot_table} WHERE wallet_id = %s AND remaining > 0"
        " AND expires_at <= %s)",
        "wallet",
        "amount",
        "amount",
        "wallet",
        "now",
    )
    if credit:
        statement.add(
            f" AND NOT EXISTS (SELECT 1 FROM {wallet_table} WHERE id = %s AND debt > 0)",
            "target",
        )
    statement.add(")")
    for index, (table, columns, placeholders) in enumerate(shapes):
        statement.add_row(
            index,
            f", row{index} AS (INSERT INTO {table} ({columns}) SELECT {placeholders} FROM guard)",
        )
    statement.add(
        f", allocation AS (INSERT INTO {Allocation._meta.db_table} (transaction_id, lot_id, amount)"
        " SELECT %s, drawn.id, %s FROM guard, drawn)"
        f", drew AS (UPDATE {lot_table} SET remaining = remaining - %s"
        " WHERE id = (SELECT id FROM drawn) AND EXISTS (SELECT 1 FROM guard))",
        "debit_row",
        "amount",
        "amount",
    )
    if credit:
        statement.add(
            f", carried AS (INSERT INTO {lot_table} (wallet_id, kind, amount, remaining,"
            " expires_at, campaign, source_id, origin_id, opening, created_at)"
            " SELECT %s, drawn.kind, %s, %s, drawn.expires_at, drawn.campaign, %s, drawn.id,"
            " false, %s FROM guard, drawn)",
            "target",
            "amount",
            "amount",
            "credit_row",
            "now",
        )
    statement.add(
        f", debit AS (UPDATE {wallet_table}"
        " SET balance = balance - %s, audit_head = %s, updated_at = %s"
        " WHERE id = %s AND balance >= %s AND debt = 0 AND EXISTS (SELECT 1 FROM guard)"
        " RETURNING balance)",
        "amount",
        "head",
        "now",
        "wallet",
        "amount",
    )
    if not credit:
        return statement.add(" SELECT balance FROM debit").build()
    statement.add(
        f", credit AS (UPDATE {wallet_table}"
        " SET balance = balance + %s, audit_head = %s, updated_at = %s"
        " WHERE id = %s AND EXISTS (SELECT 1 FROM debit)"
        " RETURNING balance)",
        "amount",
        "target_head",
        "now",
        "target",
    )
    return statement.add(" SELECT debit.balance, credit.balance FROM debit, credit").build()


# Field classes whose database value is the attribute itself (ints, strings, booleans,
# foreign key ids, aware datetimes); every other field goes through get_db_prep_save.
