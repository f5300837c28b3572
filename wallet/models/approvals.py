"""Four-eyes approvals: a large adjustment or grant waits here for a second staff member.

The request's own fields never change after creation; only the decision moves, once.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from wallet.models.ledger import Transaction, Wallet, codename
from wallet.permissions import APPROVE


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


class ApprovalKind(models.TextChoices):
    """What an approved request books: an adjustment, or a grant of promotional points."""

    ADJUSTMENT = "adjustment", "Adjustment"
    GRANT = "grant", "Grant"


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
    kind = models.CharField(
        max_length=16, choices=ApprovalKind.choices, default=ApprovalKind.ADJUSTMENT
    )
    amount = models.BigIntegerField()
    reason = models.CharField(max_length=500)
    # A grant's own terms (the request's `expires_at` is how long it waits for a decision).
    grant_expires_at = models.DateTimeField(null=True, blank=True)
    campaign = models.CharField(max_length=100, blank=True, default="")
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
        permissions = [(codename(APPROVE), "Can approve or reject a large adjustment")]
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
            # Nobody asks for or decides a change to their own wallet
            # (migration 0013_minting_controls).
            models.CheckConstraint(
                condition=~Q(requested_by=F("user")), name="approval_not_asked_by_owner"
            ),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("user")),
                name="approval_not_decided_by_owner",
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
            models.CheckConstraint(
                condition=Q(kind=ApprovalKind.ADJUSTMENT) | Q(amount__gt=0),
                name="approval_grant_positive",
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
        return self.status == ApprovalStatus.PENDING and self.expires_at <= (now or timezone.now())

    @property
    def effective_status(self) -> str:
        """What the request reads now: a pending request past its expiry reads `expired`."""
        return ApprovalStatus.EXPIRED.value if self.is_expired() else str(self.status)

    @property
    def is_pending(self) -> bool:
        return self.effective_status == ApprovalStatus.PENDING
