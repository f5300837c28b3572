"""Wallets and their ledger.

`Wallet.balance` is a cache of the ledger: the sum of the wallet's successful
transaction amounts. Constraints that keep money sane live in the database too, so
a bug in Python (or a hand-written SQL statement) cannot break them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections, models
from django.db.models import F, Q
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS as KNOX

from divine_whispers.db.compiled import CompiledQuery
from divine_whispers.db.faults import row_locks_disabled


class WalletManager(models.Manager):
    def ensure_for_users(self, user_ids: Iterable[int]) -> None:
        """Create missing wallets; concurrent first-time callers both succeed.

        `INSERT … ON CONFLICT DO NOTHING` instead of get_or_create: a racing creator
        neither fails on the unique user constraint nor aborts the caller's transaction.
        """
        self.bulk_create([Wallet(user_id=user_id) for user_id in user_ids], ignore_conflicts=True)

    def lock_for_users(self, user_ids: Iterable[int]) -> dict[int, Wallet]:
        """Lock the users' wallets (creating missing ones) in ascending wallet id order.

        Every operation takes its locks through here, always in the same global
        order, so two operations touching the same wallets cannot deadlock.
        Returns the locked wallets keyed by user id.
        """
        wanted = sorted(set(user_ids))
        locked = self._select_locked(wanted)
        if len(locked) < len(wanted):
            self.ensure_for_users(wanted)
            locked = self._select_locked(wanted)
        return {wallet.user_id: wallet for wallet in locked}

    def lock_for_user(self, user_id: int) -> Wallet:
        return self.lock_for_users([user_id])[user_id]

    def _select_locked(self, user_ids: list[int]) -> list[Wallet]:
        wallets = self.filter(user_id__in=user_ids).order_by("id")
        if row_locks_disabled():  # test-only switch proving the concurrency tests can fail
            return list(wallets)
        return list(wallets.select_for_update())

    # --- the spend fast path (wallet.services.spend): two statements, raw SQL ----------

    def lock_for_spend(self, user_id: int, job_type_code: str) -> SpendLock | None:
        """Lock the user's wallet, read the job type and reserve the new rows' ids: one
        round trip instead of three (job type, wallet lock, user).

        Ids are reserved up front because the audit event's hash covers its
        transaction id, and it must be computed (in Python: the key is not in the
        database) before the rows are written. Returns None when the wallet or the job
        type does not exist, and on SQLite (`make run`; the statements are PostgreSQL's):
        the caller then takes the general path.
        """
        from jobs.models import JobType

        if connections[self.db].vendor != "postgresql":
            return None
        sql = _lock_for_spend_sql()
        if row_locks_disabled():  # test-only switch (faults.py), as in _select_locked
            sql = sql.replace(" FOR UPDATE OF w", "")
        with _prepared_cursor(connections[self.db]) as cursor:
            cursor.execute(sql, [job_type_code, user_id])
            row = cursor.fetchone()
        if row is None:
            return None
        wallet = Wallet.from_db(self.db, ["id", "balance", "audit_head"], row[0:3])
        wallet.user_id = user_id
        job_type = JobType.from_db(self.db, ["id", "code", "name", "price", "active"], row[3:8])
        return SpendLock(wallet, job_type, transaction_id=row[8], job_id=row[9])

    def book_spend(
        self,
        wallet: Wallet,
        *,
        amount: int,
        rows: Sequence[models.Model],
        velocity_since: datetime,
        velocity_limit: int,
        reference_id: str | None,
        now: datetime,
    ) -> int | None:
        """Write a spend locked by `lock_for_spend` in one statement, or nothing at all.

        The inserts of `rows` (ledger row, job, audit event; primary keys already set)
        and the conditional debit `balance = balance - amount WHERE balance >= amount`
        run only if a guard holds: the balance covers `amount`, fewer than
        `velocity_limit` spends/transfers since `velocity_since`, and no earlier spend
        with `reference_id`. The statement runs after the wallet lock was taken, so its
        snapshot sees every committed operation on this wallet: the guard is as exact
        as the general path's separate queries.

        Every concrete field of each row is written (a field added to a model later is
        written here too); a primary key left unset is numbered by the database.

        Returns the new balance, or None when the guard refused (the caller then takes
        the general path, which replays, refuses or audits as the contract says).
        """
        guard = _Guard(wallet, amount, velocity_since, velocity_limit, reference_id)
        tail = [amount, wallet.audit_head, now, wallet.pk, amount]
        sql_key = (TransactionType.SPEND.value if reference_id is not None else None, False)
        row = self._book_guarded(guard, rows, tail, sql_key)
        return None if row is None else row[0]

    # --- the transfer fast path (wallet.services.transfer): two statements too ---------

    def lock_for_transfer(self, sender_id: int, recipient_id: int) -> TransferLock | None:
        """Lock both wallets in ascending wallet id order and reserve the ids of the two
        ledger rows: one round trip. None when a wallet does not exist yet, or on
        SQLite; the caller then takes the general path."""
        if connections[self.db].vendor != "postgresql":
            return None
        sql = _lock_for_transfer_sql()
        if row_locks_disabled():  # test-only switch (wallet/faults.py), as in _select_locked
            sql = sql.replace(" FOR UPDATE", "")
        with _prepared_cursor(connections[self.db]) as cursor:
            cursor.execute(sql, [sender_id, recipient_id])
            rows = cursor.fetchall()
        if len(rows) != 2:
            return None
        wallets = {
            row[1]: Wallet.from_db(self.db, ["id", "user_id", "balance", "audit_head"], row[0:4])
            for row in rows
        }
        debit_id, credit_id = sorted(row[4] for row in rows)
        return TransferLock(
            wallets[sender_id], wallets[recipient_id], debit_id=debit_id, credit_id=credit_id
        )

    def book_transfer(
        self,
        source: Wallet,
        target: Wallet,
        *,
        amount: int,
        rows: Sequence[models.Model],
        velocity_since: datetime,
        velocity_limit: int,
        reference_id: str | None,
        now: datetime,
    ) -> tuple[int, int] | None:
        """Write a transfer locked by `lock_for_transfer` in one statement, or nothing.

        The same guard as `book_spend` on the source wallet (balance, velocity, the
        reference among its transfer_out rows); then the rows (both ledger rows, both
        audit events) are inserted, the source debited and the target credited, each
        wallet with its new chain head. `source` and `target` carry the heads after the
        events were built. Returns (source balance, target balance), or None when the
        guard refused.
        """
        guard = _Guard(source, amount, velocity_since, velocity_limit, reference_id)
        tail = [amount, source.audit_head, now, source.pk, amount]
        tail += [amount, target.audit_head, now, target.pk]
        sql_key = (
            TransactionType.TRANSFER_OUT.value if reference_id is not None else None,
            True,
        )
        row = self._book_guarded(guard, rows, tail, sql_key)
        return None if row is None else (row[0], row[1])

    def _book_guarded(
        self, guard: _Guard, rows: Sequence[models.Model], tail: list, sql_key: tuple
    ) -> tuple | None:
        """Run the guarded statement of `_book_sql` with its parameters in order."""
        connection = connections[self.db]
        wallet_id = guard.wallet.pk
        params: list[Any] = [wallet_id, guard.velocity_since, guard.velocity_limit]
        params.append(guard.velocity_limit)
        if guard.reference_id is not None:
            params += [wallet_id, guard.reference_id]
        params += [wallet_id, guard.amount]
        shapes = []
        for row in rows:
            columns, placeholders, getters = _insert_shape(
                type(row), connection.vendor, row.pk is not None
            )
            shapes.append((row._meta.db_table, columns, placeholders))
            params += [get(row, connection) for get in getters]
        params += tail
        sql = _book_sql(tuple(shapes), *sql_key)
        with _prepared_cursor(connection) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def for_user(self, user_id: int) -> Wallet:
        """The user's wallet, created with 0 points on first use (not locked).

        Every balance request reads it: the query is compiled once per process."""
        wallet = _WALLET_OF_USER.first(using=self.db, user_id=user_id)
        if wallet is None:
            self.ensure_for_users([user_id])
            wallet = self.get(user_id=user_id)
        return wallet


class _PreparedCursor(psycopg.RawCursor):
    """Server-side binding with PostgreSQL's own `$n` placeholders, prepared on first
    use per connection: the spend's two statements are parsed and planned once, not on
    every call (planning the guarded insert costs more than running it)."""

    def execute(self, query, params=None, *, prepare: bool | None = True, binary=None):
        return super().execute(query, params, prepare=prepare, binary=binary)


class _UnpreparedCursor(psycopg.RawCursor):
    """The same statements bound unnamed, never prepared: behind a transaction-mode
    pooler (DATABASE_TRANSACTION_POOLING) a named statement would be left on one server
    connection and be missing, or already exist, on the next one."""

    def execute(self, query, params=None, *, prepare: bool | None = False, binary=None):
        return super().execute(query, params, prepare=False, binary=binary)


def _prepared_cursor(connection):
    """A Django cursor (error translation, query logging, execute wrappers) over a
    `_PreparedCursor`, in the connection's current transaction; unprepared under
    transaction pooling."""
    connection.ensure_connection()
    raw = connection.connection
    if settings.DATABASE_TRANSACTION_POOLING:
        return connection._prepare_cursor(_UnpreparedCursor(raw))
    if raw.prepare_threshold is None:
        # Django switches psycopg's preparing off (for transaction poolers); an explicit
        # prepare needs it on. This threshold is never reached, so every other query
        # stays unprepared exactly as before.
        raw.prepare_threshold = 2**31
    return connection._prepare_cursor(_PreparedCursor(raw))


def _numbered(sql: str) -> str:
    """`%s` placeholders to PostgreSQL's `$1`, `$2`, … (once per statement shape)."""
    parts = sql.split("%s")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


@lru_cache(maxsize=1)
def _lock_for_spend_sql() -> str:
    from jobs.models import Job, JobType

    return _numbered(
        "SELECT w.id, w.balance, w.audit_head, t.id, t.code, t.name, t.price, t.active,"
        f" nextval(pg_get_serial_sequence('{Transaction._meta.db_table}', 'id')),"
        f" nextval(pg_get_serial_sequence('{Job._meta.db_table}', 'id'))"
        f" FROM {Wallet._meta.db_table} w JOIN {JobType._meta.db_table} t ON t.code = %s"
        " WHERE w.user_id = %s FOR UPDATE OF w"
    )


@lru_cache(maxsize=1)
def _lock_for_transfer_sql() -> str:
    """Both locks first, then the ids. A row's ids must be drawn while every wallet it
    touches is locked: an id drawn before waiting for a lock would be smaller than the
    ids of the operation that held it, and a wallet's rows would then not be in ledger
    order (verify_ledger checks `balance_after` along ascending ids). `held` aggregates
    every locked row, so no `nextval` runs before the last lock is taken."""
    return _numbered(
        "WITH locked AS MATERIALIZED (SELECT id, user_id, balance, audit_head"
        f" FROM {Wallet._meta.db_table} WHERE user_id IN (%s, %s) ORDER BY id FOR UPDATE),"
        " held AS (SELECT count(*) FROM locked)"
        " SELECT locked.id, user_id, balance, audit_head,"
        f" nextval(pg_get_serial_sequence('{Transaction._meta.db_table}', 'id'))"
        " FROM held, locked ORDER BY locked.id"
    )


@lru_cache(maxsize=16)
def _book_sql(
    shapes: tuple[tuple[str, str, str], ...], reference_type: str | None, credit: bool
) -> str:
    """The guarded statement of `book_spend` / `book_transfer`. Parameters, in order:
    wallet, window start, limit, limit, [wallet, reference], wallet, amount, each row's
    values, amount, audit head, now, wallet, amount, [amount, audit head, now, target]."""
    txn_table, wallet_table = Transaction._meta.db_table, Wallet._meta.db_table
    # Types and status are written into the text (constants of this module), so a
    # prepared plan can still prove that the partial index txn_velocity applies.
    guard = [
        f"(SELECT count(*) FROM (SELECT 1 FROM {txn_table}"
        f" WHERE wallet_id = %s AND type IN ({_VELOCITY_TYPES_SQL})"
        f" AND status = '{TransactionStatus.SUCCESS.value}' AND created_at >= %s"
        " LIMIT %s) recent) < %s"
    ]
    if reference_type is not None:
        guard.append(
            f"NOT EXISTS (SELECT 1 FROM {txn_table} WHERE wallet_id = %s"
            f" AND type = '{TransactionType(reference_type).value}' AND reference_id = %s)"
        )
    guard.append(f"EXISTS (SELECT 1 FROM {wallet_table} WHERE id = %s AND balance >= %s)")
    ctes = [f"guard AS (SELECT 1 WHERE {' AND '.join(guard)})"]
    for index, (table, columns, placeholders) in enumerate(shapes):
        ctes.append(
            f"row{index} AS (INSERT INTO {table} ({columns}) SELECT {placeholders} FROM guard)"
        )
    ctes.append(
        f"debit AS (UPDATE {wallet_table}"
        " SET balance = balance - %s, audit_head = %s, updated_at = %s"
        " WHERE id = %s AND balance >= %s AND EXISTS (SELECT 1 FROM guard)"
        " RETURNING balance)"
    )
    if not credit:
        return _numbered(f"WITH {', '.join(ctes)} SELECT balance FROM debit")
    ctes.append(
        f"credit AS (UPDATE {wallet_table}"
        " SET balance = balance + %s, audit_head = %s, updated_at = %s"
        " WHERE id = %s AND EXISTS (SELECT 1 FROM debit)"
        " RETURNING balance)"
    )
    return _numbered(
        f"WITH {', '.join(ctes)} SELECT debit.balance, credit.balance FROM debit, credit"
    )


# Field classes whose database value is the attribute itself (ints, strings, booleans,
# foreign key ids, aware datetimes); every other field goes through get_db_prep_save.
_PLAIN_FIELDS = (
    models.IntegerField,  # includes BigIntegerField, the auto fields, PositiveIntegerField
    models.CharField,  # includes SlugField
    models.TextField,
    models.BooleanField,
    models.ForeignKey,  # includes OneToOneField
    models.DateTimeField,
)


@lru_cache(maxsize=16)
def _insert_shape(model: type[models.Model], vendor: str, with_pk: bool) -> tuple:
    """Column list, typed placeholders and value getters of an INSERT of `model`.

    Depends on the schema only, so it is computed once per model and process. The
    getters reproduce the ORM's INSERT (`pre_save`, then `get_db_prep_save`), skipping
    the conversion where it is the identity: it is most of the Python time of a spend.
    """
    connection = next(c for c in connections.all() if c.vendor == vendor)
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(f"%s::{f.cast_db_type(connection)}" for f in fields)
    getters = []
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            getters.append(lambda obj, conn, f=f: f.pre_save(obj, True))
        elif isinstance(f, _PLAIN_FIELDS):
            getters.append(lambda obj, conn, name=f.attname: getattr(obj, name))
        else:
            getters.append(lambda obj, conn, f=f: f.get_db_prep_save(getattr(obj, f.attname), conn))
    return columns, placeholders, getters


class SpendLock:
    """What `lock_for_spend` read under the lock."""

    __slots__ = ("job_id", "job_type", "transaction_id", "wallet")

    def __init__(self, wallet: Wallet, job_type: Any, *, transaction_id: int, job_id: int):
        self.wallet = wallet
        self.job_type = job_type
        self.transaction_id = transaction_id
        self.job_id = job_id


class TransferLock:
    """What `lock_for_transfer` read under the locks."""

    __slots__ = ("credit_id", "debit_id", "source", "target")

    def __init__(self, source: Wallet, target: Wallet, *, debit_id: int, credit_id: int):
        self.source = source
        self.target = target
        self.debit_id = debit_id
        self.credit_id = credit_id


class _Guard:
    """What the guarded statement checks on the debited wallet before writing."""

    __slots__ = ("amount", "reference_id", "velocity_limit", "velocity_since", "wallet")

    def __init__(
        self,
        wallet: Wallet,
        amount: int,
        velocity_since: datetime,
        velocity_limit: int,
        reference_id: str | None,
    ):
        self.wallet = wallet
        self.amount = amount
        self.velocity_since = velocity_since
        self.velocity_limit = velocity_limit
        self.reference_id = reference_id


class Wallet(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet"
    )
    balance = models.BigIntegerField(default=0)
    # Hash of the newest audit event of this wallet's chain (see audit.models).
    audit_head = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WalletManager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_non_negative"),
        ]
        permissions = [
            ("deposit_points", "Can credit points after a payment"),
            ("adjust_points", "Can adjust points with a reason"),
        ]

    def __str__(self) -> str:
        return f"Wallet of {self.user} ({self.balance:,d} pts)"


class TransactionType(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    SPEND = "spend", "Spend"
    REFUND = "refund", "Refund"
    TRANSFER_OUT = "transfer_out", "Transfer out"
    TRANSFER_IN = "transfer_in", "Transfer in"
    ADJUSTMENT = "adjustment", "Adjustment"


class TransactionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"


CREDIT_TYPES = (TransactionType.DEPOSIT, TransactionType.REFUND, TransactionType.TRANSFER_IN)
DEBIT_TYPES = (TransactionType.SPEND, TransactionType.TRANSFER_OUT)
# Operations counted by the velocity limit.
VELOCITY_TYPES = (TransactionType.SPEND, TransactionType.TRANSFER_OUT)
_VELOCITY_TYPES_SQL = ", ".join(f"'{t.value}'" for t in VELOCITY_TYPES)


class TransactionQuerySet(models.QuerySet):
    def successful(self) -> TransactionQuerySet:
        return self.filter(status=TransactionStatus.SUCCESS)

    def update(self, **kwargs):
        """Only a status may move (from pending, with its updated_at); amounts never do.

        PostgreSQL enforces the same rule with a trigger (audit/migrations/0002).
        """
        if set(kwargs) - {"status", "updated_at"}:
            raise TypeError("Transaction rows are append-only; only status may change")
        return super().update(**kwargs)

    def delete(self):
        raise TypeError("Transaction rows are append-only")


class Transaction(models.Model):
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="transactions")
    # Denormalised from wallet.user so a user's history needs no join.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet_transactions"
    )
    type = models.CharField(max_length=16, choices=TransactionType.choices)
    amount = models.BigIntegerField()
    status = models.CharField(
        max_length=8, choices=TransactionStatus.choices, default=TransactionStatus.SUCCESS
    )
    balance_after = models.BigIntegerField()
    reference_id = models.CharField(max_length=255, null=True, blank=True)
    # sha256 of the call's parameters: a repeated reference replays only if it matches.
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    related_transaction = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    transfer_id = models.UUIDField(null=True, blank=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    objects = TransactionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("refund_transaction", "Can refund a spend")]
        indexes = [
            models.Index(fields=["wallet", "-created_at", "-id"], name="txn_history"),
            models.Index(fields=["user", "-created_at", "-id"], name="txn_user_history"),
            models.Index(fields=["status", "created_at"], name="txn_status_age"),
            # The velocity rule counts one wallet's recent successful spends/transfers.
            # Without this index PostgreSQL picks txn_status_age and scans every
            # wallet's rows of the window: cost growing with the whole site's traffic.
            models.Index(
                fields=["wallet", "created_at"],
                condition=Q(status="success", type__in=["spend", "transfer_out"]),
                name="txn_velocity",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="txn_amount_non_zero"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="txn_balance_after_ok"),
            models.CheckConstraint(
                condition=(
                    Q(type__in=[t.value for t in CREDIT_TYPES], amount__gt=0)
                    | Q(type__in=[t.value for t in DEBIT_TYPES], amount__lt=0)
                    | Q(type=TransactionType.ADJUSTMENT)
                ),
                name="txn_sign_matches_type",
            ),
            models.CheckConstraint(
                condition=~Q(type=TransactionType.REFUND) | Q(related_transaction__isnull=False),
                name="txn_refund_has_spend",
            ),
            models.CheckConstraint(
                condition=~Q(type__in=[TransactionType.TRANSFER_IN, TransactionType.TRANSFER_OUT])
                | Q(transfer_id__isnull=False),
                name="txn_transfer_has_id",
            ),
            models.CheckConstraint(
                condition=~Q(type=TransactionType.DEPOSIT) | Q(reference_id__isnull=False),
                name="txn_deposit_has_reference",
            ),
            models.CheckConstraint(
                condition=~Q(type=TransactionType.ADJUSTMENT) | ~Q(description=""),
                name="txn_adjustment_has_reason",
            ),
            models.UniqueConstraint(
                fields=["wallet", "type", "reference_id"],
                condition=Q(reference_id__isnull=False),
                name="txn_unique_reference",
            ),
            models.UniqueConstraint(
                fields=["transfer_id", "type"],
                condition=Q(transfer_id__isnull=False),
                name="txn_one_pair_per_transfer",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.type} {self.amount:+d}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise TypeError("Transaction rows are append-only; corrections are new rows")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Transaction rows are append-only")


def new_transfer_id() -> uuid.UUID:
    return uuid.uuid4()


class ApiToken(AbstractAuthToken):
    """An API key, stored only as its SHA-512 digest (django-rest-knox's model).

    Whoever reads the database or a backup learns the digest and the key's first 15
    characters (knox's lookup prefix), never a usable key. The key itself is shown once,
    when it is issued (`manage.py issue_token`, or the admin). Every key expires; revoking
    deletes the row. The digest is unique but not the primary key, so admin URLs never
    carry it.
    """

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=KNOX.DIGEST_LENGTH, unique=True)
    name = models.CharField(max_length=100, blank=True, help_text="A label, e.g. 'mobile app'.")
    expiry = models.DateTimeField(help_text="The key is refused from this moment on.")

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        label = f" ({self.name})" if self.name else ""
        return f"API key #{self.pk} of {self.user}{label}"


# --- Four-eyes approvals -------------------------------------------------------------------


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


class ApprovalRequestQuerySet(models.QuerySet):
    """Reads of approval requests; `expired` is derived from `expires_at` for rows
    nobody has decided yet, so no background job is needed for a request to expire."""

    def with_status(self, status: str, now: datetime) -> ApprovalRequestQuerySet:
        """Requests that *read* `status` at `now` (a pending one past expiry reads expired)."""
        if status == ApprovalStatus.PENDING:
            return self.filter(status=ApprovalStatus.PENDING, expires_at__gt=now)
        if status == ApprovalStatus.EXPIRED:
            return self.filter(
                Q(status=ApprovalStatus.EXPIRED)
                | Q(status=ApprovalStatus.PENDING, expires_at__lte=now)
            )
        return self.filter(status=status)

    def delete(self):
        raise TypeError("Approval requests are never deleted")


class ApprovalRequest(models.Model):
    """A large adjustment waiting for a second staff member (contract: Approvals).

    Written only by wallet.services (request_adjustment via adjust, approve_adjustment,
    reject_adjustment). The request's own fields never change after creation; only the
    decision moves, once, from `pending` (PostgreSQL enforces this with a trigger, see
    migration 0005). The database also refuses a decision by the requester.
    """

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="approval_requests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    reason = models.CharField(max_length=500)
    reference_id = models.CharField(max_length=255, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64)
    status = models.CharField(
        max_length=8, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.CharField(max_length=500, blank=True, default="")
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="approval"
    )
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    objects = ApprovalRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_adjustment", "Can approve or reject a large adjustment")]
        indexes = [
            models.Index(fields=["status", "-created_at", "-id"], name="approval_queue"),
            models.Index(fields=["wallet", "-created_at"], name="approval_wallet"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="approval_amount_non_zero"),
            models.CheckConstraint(condition=~Q(reason=""), name="approval_has_reason"),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in ApprovalStatus]),
                name="approval_status_known",
            ),
            # Four eyes, in the database too: nobody decides their own request.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="approval_four_eyes",
            ),
            # Approved exactly when an adjustment was booked for it.
            models.CheckConstraint(
                condition=Q(status=ApprovalStatus.APPROVED, transaction__isnull=False)
                | (~Q(status=ApprovalStatus.APPROVED) & Q(transaction__isnull=True)),
                name="approval_booked_iff_approved",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[ApprovalStatus.APPROVED, ApprovalStatus.REJECTED])
                | Q(decided_by__isnull=False, decided_at__isnull=False),
                name="approval_decision_has_decider",
            ),
            models.CheckConstraint(
                condition=~Q(status=ApprovalStatus.REJECTED) | ~Q(decision_reason=""),
                name="approval_rejection_has_reason",
            ),
            models.UniqueConstraint(
                fields=["wallet", "reference_id"],
                condition=Q(reference_id__isnull=False),
                name="approval_unique_reference",
            ),
        ]

    def __str__(self) -> str:
        return f"Approval #{self.pk} {self.amount:+,d} ({self.effective_status})"

    def delete(self, *args, **kwargs):
        raise TypeError("Approval requests are never deleted")

    def is_expired(self, now: datetime | None = None) -> bool:
        if self.status == ApprovalStatus.EXPIRED:
            return True
        from django.utils import timezone

        return self.status == ApprovalStatus.PENDING and self.expires_at <= (now or timezone.now())

    @property
    def effective_status(self) -> str:
        """What the request reads now: a pending request past its expiry reads `expired`."""
        return ApprovalStatus.EXPIRED.value if self.is_expired() else str(self.status)

    @property
    def is_pending(self) -> bool:
        return self.effective_status == ApprovalStatus.PENDING


class FinanceReport(Transaction):
    """No table of its own: the ledger, seen as the finance report (wallet/admin_reports.py).

    It exists to give the report its place in the admin and its permission,
    `wallet.view_report` (group finance), which the API checks too.
    """

    class Meta:
        proxy = True
        verbose_name = "finance report"
        verbose_name_plural = "finance report"
        default_permissions = ()
        permissions = [("view_report", "Can view the daily finance report")]


# A sentinel id no user has: where the compiled query's parameter goes.
_WALLET_OF_USER = CompiledQuery(
    lambda user_id: Wallet.objects.filter(user_id=user_id), user_id=-(2**62) - 1
)
