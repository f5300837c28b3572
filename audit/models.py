"""Audit trail: append-only events forming keyed hash chains.

Each wallet has its own chain (its head lives on the wallet row, which every money
operation already locks), and events that belong to no wallet go to one system chain
whose head is a row of AuditChainHead.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

SYSTEM_CHAIN = "system"


def wallet_chain(wallet_id: int) -> str:
    return f"wallet:{wallet_id}"


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses bulk edits through the ORM; PostgreSQL triggers refuse them in SQL too."""

    def update(self, **kwargs):
        raise TypeError(f"{self.model.__name__} rows are append-only")

    def delete(self):
        raise TypeError(f"{self.model.__name__} rows are append-only")


class AuditChainHeadManager(models.Manager):
    def lock(self, name: str) -> AuditChainHead:
        """Lock a chain head so two writers cannot both append after the same event."""
        self.get_or_create(name=name)
        return self.select_for_update().get(name=name)


class AuditChainHead(models.Model):
    """Head of a chain that has no wallet row to live on (the system chain)."""

    name = models.CharField(primary_key=True, max_length=64)
    head = models.CharField(max_length=64, blank=True, default="")

    objects = AuditChainHeadManager()

    def __str__(self) -> str:
        return f"{self.name} → {self.head[:12]}"


class AuditEvent(models.Model):
    chain = models.CharField(max_length=64)
    action = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    wallet = models.ForeignKey(
        "wallet.Wallet",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    transaction = models.ForeignKey(
        "wallet.Transaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    amount = models.BigIntegerField(null=True, blank=True)
    balance_before = models.BigIntegerField(null=True, blank=True)
    balance_after = models.BigIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=32)
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["chain", "id"], name="audit_chain_order")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise TypeError("AuditEvent rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("AuditEvent rows are append-only")


class LedgerVerificationQuerySet(models.QuerySet):
    def last_runs(self) -> list[tuple[str, object]]:
        """(result, finished_at) of the newest run per result: one GROUP BY on the index."""
        return list(
            self.order_by("result")
            .values("result")
            .annotate(last=models.Max("finished_at"))
            .values_list("result", "last")
        )


class LedgerVerification(models.Model):
    """One `verify_ledger` run, so the server can report when the ledger was last proven.

    Written by the command after its read-only check (a separate short transaction);
    `/metrics` exposes the newest run per result, and an alert fires when the newest
    run had findings or no clean run happened for a day.
    """

    class Result(models.TextChoices):
        OK = "ok"
        FINDINGS = "findings"

    result = models.CharField(max_length=16, choices=Result.choices)
    finished_at = models.DateTimeField()
    finding_count = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0.0)
    checkpoint_checked = models.BooleanField(default=False)

    objects = LedgerVerificationQuerySet.as_manager()

    class Meta:
        ordering = ["-finished_at"]
        indexes = [models.Index(fields=["result", "finished_at"], name="ledger_verified_last")]

    def __str__(self) -> str:
        return f"{self.finished_at:%Y-%m-%d %H:%M} {self.result}"


class LockoutRecord(models.Model):
    """One row per login lockout: the database's guarantee that it is audited once.

    Concurrent failed logins each see the failure limit reached, and django-axes signals a
    lockout for every one of them (30 at once wrote 12–13 `auth.lockout` events). The
    first to insert the row for a lockout writes the event in the same transaction; the
    others hit the unique key and write nothing. A lockout is named by the axes attempt
    row it counts from (a new lockout after the window starts from a new row).
    """

    username = models.CharField(max_length=255)
    ip_address = models.CharField(max_length=64, blank=True)  # "" when unknown: never NULL
    attempt_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["username", "ip_address", "attempt_id"], name="one_lockout_record"
            ),
        ]

    def __str__(self) -> str:
        return f"lockout of {self.username} from {self.ip_address or '?'}"
