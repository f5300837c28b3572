"""Wallets and their ledger: the balance cache, the append-only transaction rows, their
types and statuses.

`Wallet.balance` is a cache of the ledger: the sum of the wallet's successful
transaction amounts. Constraints that keep money sane live in the database too, so
a bug in Python (or a hand-written SQL statement) cannot break them. The two-statement
fast path that books spends and transfers with raw SQL is not here but in the services
package (wallet/services/_fast_path.py): managers only lock and read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Sum

from divine_whispers.db.compiled import CompiledQuery
from divine_whispers.db.faults import row_locks_disabled
from wallet.permissions import ADJUST, DEPOSIT, GRANT, REFUND


def codename(permission: str) -> str:
    """The codename of a full permission name (`wallet.deposit_points` → `deposit_points`),
    so a model's Meta declares the names of wallet/permissions.py, not copies of them."""
    return permission.partition(".")[2]


class WalletManager(models.Manager):
    """Wallets found, created and locked with the ORM; every lock is taken through here."""

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

    def for_user(self, user_id: int) -> Wallet:
        """The user's wallet, created with 0 points on first use (not locked).

        Every balance request reads it: the query is compiled once per process."""
        wallet = _WALLET_OF_USER.first(using=self.db, user_id=user_id)
        if wallet is None:
            self.ensure_for_users([user_id])
            wallet = self.get(user_id=user_id)
        return wallet


class Wallet(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet"
    )
    balance = models.BigIntegerField(default=0)
    # Points a clawback could not take from the balance; the next credits pay it first.
    # Equals the wallet's clawbacks owed minus the clawback rows booked (verify_ledger).
    debt = models.BigIntegerField(default=0)
    # Hash of the newest audit event of this wallet's chain (see audit.models).
    audit_head = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WalletManager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_non_negative"),
            models.CheckConstraint(condition=Q(debt__gte=0), name="wallet_debt_non_negative"),
        ]
        permissions = [
            (codename(DEPOSIT), "Can credit points after a payment"),
            (codename(ADJUST), "Can adjust points with a reason"),
            (codename(GRANT), "Can grant promotional points"),
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
    PURCHASE = "purchase", "Purchase"
    CLAWBACK = "clawback", "Clawback"
    CLAWBACK_REVERSAL = "clawback_reversal", "Clawback reversal"
    GRANT = "grant", "Grant"
    EXPIRY = "expiry", "Expiry"


class TransactionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"


CREDIT_TYPES = (
    TransactionType.DEPOSIT,
    TransactionType.REFUND,
    TransactionType.TRANSFER_IN,
    TransactionType.PURCHASE,
    TransactionType.CLAWBACK_REVERSAL,
    TransactionType.GRANT,
)
DEBIT_TYPES = (
    TransactionType.SPEND,
    TransactionType.TRANSFER_OUT,
    TransactionType.CLAWBACK,
    TransactionType.EXPIRY,
)
# Operations counted by the velocity limit.
VELOCITY_TYPES = (TransactionType.SPEND, TransactionType.TRANSFER_OUT)


class TransactionQuerySet(models.QuerySet):
    def successful(self) -> TransactionQuerySet:
        return self.filter(status=TransactionStatus.SUCCESS)

    def ledger_sum(self, wallet_id: int) -> int:
        """The sum of the wallet's successful amounts: what its cached balance must be.

        The one per-wallet ledger sum: the balance repair and the ledger checks read it."""
        total = self.successful().filter(wallet_id=wallet_id).aggregate(total=Sum("amount"))
        return total["total"] or 0

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
    type = models.CharField(max_length=20, choices=TransactionType.choices)
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
        permissions = [(codename(REFUND), "Can refund a spend")]
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
            # The cumulative approval threshold sums one staff member's recent credits
            # (wallet/services/_minting.py) across every wallet.
            models.Index(
                fields=["actor", "created_at"],
                condition=Q(amount__gt=0, actor__isnull=False),
                name="txn_credit_by_actor",
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
            # Nobody credits their own wallet (migration 0013_minting_controls; NOT VALID
            # on PostgreSQL).
            models.CheckConstraint(
                condition=~Q(type__in=["adjustment", "deposit", "grant"], actor=F("user")),
                name="txn_no_self_credit",
            ),
            models.CheckConstraint(
                condition=~Q(type=TransactionType.GRANT) | ~Q(description=""),
                name="txn_grant_has_reason",
            ),
            # An expiry's reference names its lot: the unique index below then books each
            # lot's expiry exactly once, however many expiry runs race.
            models.CheckConstraint(
                condition=~Q(type=TransactionType.EXPIRY) | Q(reference_id__isnull=False),
                name="txn_expiry_has_reference",
            ),
            models.UniqueConstraint(
                fields=["wallet", "type", "reference_id"],
                condition=Q(reference_id__isnull=False),
                name="txn_unique_reference",
            ),
            # A provider payment is credited once, ever, whichever wallet it names.
            models.UniqueConstraint(
                fields=["reference_id"],
                condition=Q(type="purchase"),
                name="txn_one_credit_per_payment",
            ),
            models.CheckConstraint(
                condition=~Q(type="purchase") | Q(reference_id__isnull=False),
                name="txn_purchase_has_payment",
            ),
            models.UniqueConstraint(
                fields=["transfer_id", "type"],
                condition=Q(transfer_id__isnull=False),
                name="txn_one_pair_per_transfer",
            ),
        ]

    def __str__(self) -> str:
        # The admin's titles, breadcrumbs and links: "Deposit #1 (+1,000 points)".
        return f"{self.get_type_display()} #{self.pk} ({self.amount:+,d} points)"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise TypeError("Transaction rows are append-only; corrections are new rows")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Transaction rows are append-only")


def new_transfer_id() -> uuid.UUID:
    return uuid.uuid4()


# A sentinel id no user has: where the compiled query's parameter goes.
_WALLET_OF_USER = CompiledQuery(
    lambda user_id: Wallet.objects.filter(user_id=user_id), user_id=-(2**62) - 1
)
