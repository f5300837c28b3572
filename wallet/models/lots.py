"""Lots: where a wallet's points came from, what is left of each, and which lots each
debit drew from.

Every credit books its points into a lot (`paid` or `promotional`, optionally
expiring); every debit records the lots it drew from as allocation rows. The unused
remainders of a wallet's lots always sum to its balance (verify_ledger proves it), and
the database keeps every remainder between 0 and the lot's amount. Lots and allocations
are written only by wallet/services/_lots.py (and the fast path's statement), always
under the wallet lock.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import F, Q

from wallet.models.ledger import Transaction, Wallet


class LotKind(models.TextChoices):
    PAID = "paid", "Paid"
    PROMOTIONAL = "promotional", "Promotional"


class LotQuerySet(models.QuerySet):
    def live(self, now: datetime) -> LotQuerySet:
        """Lots with an unused remainder that have not reached their expiry."""
        return self.filter(remaining__gt=0).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def due(self, now: datetime) -> LotQuerySet:
        """Lots past their expiry that still hold points: the expiry job's work."""
        return self.filter(remaining__gt=0, expires_at__lte=now)

    def in_draw_order(self) -> LotQuerySet:
        """The contract's order: promotional before paid, soonest expiry first
        (never-expiring last), then the oldest. The fast path's SQL says the same."""
        return self.order_by(
            models.Case(
                models.When(kind=LotKind.PROMOTIONAL, then=0),
                default=1,
                output_field=models.IntegerField(),
            ),
            F("expires_at").asc(nulls_last=True),
            "created_at",
            "id",
        )


class Lot(models.Model):
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="lots")
    kind = models.CharField(max_length=16, choices=LotKind.choices)
    # Points booked into the lot when it was created; `remaining` is what is still unused.
    amount = models.BigIntegerField()
    remaining = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    campaign = models.CharField(max_length=100, blank=True, default="")
    # The credit that created the lot (for the opening lot of a wallet that existed before
    # lots: its newest ledger row, whose balance_after the lot holds; None if it had none).
    source = models.ForeignKey(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="lots"
    )
    # The lot this one continues: a transfer's lot on the sending side, or the expired
    # lot a refund gave points back to (a lot expires once, so they go to a new one).
    origin = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="continued_by"
    )
    opening = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    objects = LotQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["wallet", "expires_at"], condition=Q(remaining__gt=0), name="lot_live"
            ),
            models.Index(
                fields=["expires_at"],
                condition=Q(remaining__gt=0, expires_at__isnull=False),
                name="lot_expiring",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0), name="lot_remaining_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(remaining__lte=F("amount")), name="lot_remaining_within_amount"
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0) | Q(opening=True), name="lot_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(kind=LotKind.PROMOTIONAL) | Q(expires_at__isnull=True),
                name="lot_paid_never_expires",
            ),
            models.CheckConstraint(
                condition=Q(opening=True) | Q(source__isnull=False), name="lot_has_source"
            ),
        ]

    def __str__(self) -> str:
        return f"Lot #{self.pk} {self.kind} {self.remaining:,d}/{self.amount:,d}"


class Allocation(models.Model):
    """Points one ledger row took from (a debit) or gave back to (a refund) one lot."""

    transaction = models.ForeignKey(
        Transaction, on_delete=models.PROTECT, related_name="allocations"
    )
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="allocations")
    amount = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive"),
            models.UniqueConstraint(fields=["transaction", "lot"], name="allocation_once_per_lot"),
        ]

    def __str__(self) -> str:
        return f"{self.amount:,d} pts of lot {self.lot_id} for txn {self.transaction_id}"
