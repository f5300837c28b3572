"""Paid jobs: a spend buys exactly one Job, created in the spend's DB transaction."""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from divine_whispers.points_format import refund_state


class JobType(models.Model):
    """A kind of reading users can buy. Its price is decided here, never by the client."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    price = models.BigIntegerField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="jobtype_price_positive")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.price} pts)"


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"
    CANCELLED = "cancelled", "Cancelled"


class JobManager(models.Manager):
    def lock(self, job_id: int) -> Job:
        """The job, row-locked, with its type: a cancel's answer is built from it after
        the COMMIT, when no query may run (a lost connection would hide the outcome)."""
        return self.select_for_update(of=("self",)).select_related("job_type").get(pk=job_id)

    def claim_next(self) -> Job | None:
        """Claim the oldest pending job: `pending → running`, committed before returning.

        `SELECT … FOR UPDATE SKIP LOCKED` lets any number of workers (threads or
        processes) claim side by side: a row another worker is claiming is skipped, not
        waited for, and never handed out twice. The UPDATE repeats `status = pending`
        so the claim stays safe where row locks are ignored (SQLite, development).
        `attempts` is incremented on every claim and serves as the lease's fencing
        token: whoever records the outcome must still hold that exact attempt.
        Timestamps come from the database clock, so workers on several machines
        agree on what "stale" means.
        """
        with transaction.atomic():
            job = (
                self.select_for_update(skip_locked=True, of=("self",))
                .select_related("job_type")
                .filter(status=JobStatus.PENDING)
                .order_by("created_at", "id")
                .first()
            )
            if job is None:
                return None
            claimed = self.filter(pk=job.pk, status=JobStatus.PENDING).update(
                status=JobStatus.RUNNING,
                attempts=F("attempts") + 1,
                started_at=Now(),
                heartbeat_at=Now(),
                finished_at=None,
                updated_at=Now(),
            )
            if claimed != 1:
                return None
            job.refresh_from_db(
                fields=["status", "attempts", "started_at", "heartbeat_at", "updated_at"]
            )
            return job


class Job(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs"
    )
    job_type = models.ForeignKey(JobType, on_delete=models.PROTECT, related_name="jobs")
    transaction = models.OneToOneField(
        "wallet.Transaction", on_delete=models.PROTECT, related_name="job"
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    points_used = models.BigIntegerField()
    input = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="job_status_queue"),
            models.Index(fields=["user", "-created_at", "-id"], name="job_user_history"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(points_used__gt=0), name="job_points_positive"),
        ]

    def __str__(self) -> str:
        # The type's name, not its id: this is the admin page's title ("Job #2214
        # Three-card tarot (refunded)"), and the type row is one cached query away.
        return f"Job #{self.pk} {self.job_type.name} ({self.status_label().lower()})"

    def status_label(self) -> str:
        """The status as staff read it. The back-office annotates `refunded_points` (the
        ledger's refunds of the spend): a job whose spend was refunded in part reads
        "Partially refunded (30 of 120)", not "Refunded", which the status alone says."""
        refunded = getattr(self, "refunded_points", None)
        if refunded and refunded < self.points_used:
            return refund_state(refunded, self.points_used)
        return self.get_status_display()
