"""Buying points: the packages on sale, each purchase through the payment provider, the
clawbacks its refunds and disputes cause, and the provider's webhook events as received.

A purchase is credited once, ever: the `purchase` ledger row carries the provider's
payment id under a unique index (wallet/models/ledger.py), and `Purchase.provider_payment_id`
is unique too. A clawback is booked once per provider refund or dispute: `Clawback.source_id`
(the refund's or dispute's id) is unique. What a clawback could not take from the balance
is the wallet's debt; verify_ledger checks that it equals the clawbacks owed minus the
clawback rows booked.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, models
from django.db.models import Q

from wallet.models.ledger import Transaction, Wallet, codename
from wallet.permissions import REFUND_PURCHASE


class PointPackage(models.Model):
    """Points sold for money; the price (minor units of `currency`) is the server's, never
    the client's. Price changes go through `services.save_package` (audited)."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    points = models.BigIntegerField()
    price = models.BigIntegerField(help_text="In minor units of the currency (cents).")
    currency = models.CharField(max_length=3, default="usd")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["price", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(points__gt=0), name="package_points_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="package_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.points:,d} pts for {self.price} {self.currency})"


class PurchaseStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    DISPUTED = "disputed", "Disputed"


class Purchase(models.Model):
    """One buyer's attempt to buy one package: its price and points are copied from the
    package when it starts, so a later price change never alters it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases"
    )
    package = models.ForeignKey(PointPackage, on_delete=models.PROTECT, related_name="+")
    points = models.BigIntegerField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=20, choices=PurchaseStatus.choices, default=PurchaseStatus.PENDING
    )
    reference_id = models.CharField(max_length=255, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    provider = models.CharField(max_length=16, default="stripe")
    provider_payment_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    client_secret = models.CharField(max_length=255, blank=True, default="")
    credit = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="purchase"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [(codename(REFUND_PURCHASE), "Can refund a purchase through the provider")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "reference_id"],
                condition=Q(reference_id__isnull=False),
                name="purchase_unique_reference",
            ),
            models.CheckConstraint(condition=Q(points__gt=0), name="purchase_points_positive"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="purchase_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Purchase #{self.pk} {self.package_id} {self.status}"


class ClawbackKind(models.TextChoices):
    REFUND = "refund", "Provider refund"
    DISPUTE = "dispute", "Dispute"


class ClawbackQuerySet(models.QuerySet):
    def debt_differences(self) -> list[tuple[int, int, int]]:
        """(wallet id, debt, clawbacks owed minus clawback rows) of every wallet whose debt
        is not what its clawbacks explain, or is negative (verify_ledger's debt check)."""
        sql = f"""
            SELECT w.id, w.debt, COALESCE(c.owed, 0) - COALESCE(t.paid, 0)
            FROM {Wallet._meta.db_table} w
            LEFT JOIN (SELECT wallet_id, SUM(points) AS owed FROM {self.model._meta.db_table}
                       GROUP BY wallet_id) c ON c.wallet_id = w.id
            LEFT JOIN (SELECT wallet_id, -SUM(amount) AS paid FROM {Transaction._meta.db_table}
                       WHERE type = 'clawback' AND status = 'success' GROUP BY wallet_id) t
                   ON t.wallet_id = w.id
            WHERE w.debt <> COALESCE(c.owed, 0) - COALESCE(t.paid, 0) OR w.debt < 0
            ORDER BY w.id
        """
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return [(int(a), int(b), int(c)) for a, b, c in cursor.fetchall()]


class Clawback(models.Model):
    """Points owed back for one provider refund or dispute of a purchase: booked once
    (`source_id` unique), partly as a `clawback` row, the rest as the wallet's debt; a
    dispute won or a refund that failed reverses it once (`reversal`)."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="clawbacks")
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="clawbacks")
    kind = models.CharField(max_length=16, choices=ClawbackKind.choices)
    source_id = models.CharField(max_length=255, unique=True)
    money = models.BigIntegerField(help_text="Minor units the provider took back.")
    points = models.BigIntegerField()
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reversal = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reversed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClawbackQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(points__gte=0), name="clawback_points_ok"),
        ]

    def __str__(self) -> str:
        return f"Clawback {self.source_id} ({self.points:,d} pts)"


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"
    INVALID_SIGNATURE = "invalid_signature", "Invalid signature"


class ProviderEvent(models.Model):
    """The webhook inbox: every event the provider sent, stored once by its id (a refused
    signature is stored too, without an id), with what processing it did."""

    event_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    type = models.CharField(max_length=100, blank=True, default="")
    body = models.TextField()
    signature_valid = models.BooleanField()
    status = models.CharField(max_length=20, choices=EventStatus.choices)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    deliveries = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="provider_event_status")]

    def __str__(self) -> str:
        return f"{self.event_id or '(unsigned)'} {self.type} {self.status}"
