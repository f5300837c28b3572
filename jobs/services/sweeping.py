"""Refunding failed jobs and reaping stuck ones: the sweep every worker pass runs.

A failed job is refunded by `wallet.services.refund_job` (reference `job:<id>`: never
twice). A `running` job whose heartbeat went stale (its worker died) is failed first,
by a conditional UPDATE a live worker's fresh heartbeat wins against, then refunded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

from divine_whispers.errors import DomainError
from divine_whispers.money import REASON_MAX_LENGTH
from jobs.models import Job, JobStatus
from jobs.services.leases import clean_text, require_no_transaction, running_timeout
from wallet import services as wallet_services

logger = logging.getLogger("jobs.worker")


@dataclass
class SweepResult:
    reaped: list[int] = field(default_factory=list)
    refunded: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.reaped or self.refunded)


def refund_failed_job(job_id: int, error: str = "") -> int | None:
    """Refund a failed job (exactly once per job); returns the points given back.

    None when the job was not refundable any more (e.g. support refunded it meanwhile:
    it is no longer `failed`). A second call for the same job replays the first refund
    instead of paying again — the reference `job:<id>` is unique per wallet.
    """
    reason = f"Automatic refund: job #{job_id} failed"
    if error:
        reason = f"{reason} ({error})"
    try:
        refunded = wallet_services.refund_job(
            job_id=job_id,
            reason=clean_text(reason, REASON_MAX_LENGTH),
            final_status=JobStatus.REFUNDED,
            allowed_statuses=(JobStatus.FAILED,),
        )
    except DomainError as exc:
        logger.warning("job %s not refunded: %s (%s)", job_id, exc.code, exc.details)
        return None
    return refunded.transaction.amount if refunded.transaction is not None else 0


# --- Reaping stuck jobs and refunding failed ones -------------------------------------------


def _stale_running() -> Q:
    """`running` with no heartbeat for longer than the timeout (database clock)."""
    cutoff = ExpressionWrapper(
        Now() - timedelta(seconds=running_timeout()), output_field=DateTimeField()
    )
    never_beat = Q(heartbeat_at__isnull=True)
    return Q(status=JobStatus.RUNNING) & (
        Q(heartbeat_at__lt=cutoff)
        | (never_beat & Q(started_at__lt=cutoff))
        | (never_beat & Q(started_at__isnull=True, updated_at__lt=cutoff))
    )


def reap_stuck_jobs(batch_size: int = 500) -> list[int]:
    """Fail every job whose worker stopped heartbeating; returns the ids this call failed.

    The UPDATE repeats the staleness test, so a worker whose heartbeat lands between
    the SELECT and the UPDATE keeps its job, and two reapers never both fail one job.
    """
    message = (
        f"timed out: no heartbeat for more than {running_timeout():g}s (the worker stopped or died)"
    )
    reaped: list[int] = []
    candidates = list(
        Job.objects.filter(_stale_running())
        .order_by("id")
        .values_list("id", flat=True)[:batch_size]
    )
    for job_id in candidates:
        updated = Job.objects.filter(_stale_running(), pk=job_id).update(
            status=JobStatus.FAILED, error=message, finished_at=Now(), updated_at=Now()
        )
        if updated:
            logger.warning("job %s reaped: %s", job_id, message)
            reaped.append(job_id)
    return reaped


def failed_job_ids(batch_size: int = 500) -> list[int]:
    """Failed jobs still waiting for their refund (normally only after a crash)."""
    return list(
        Job.objects.filter(status=JobStatus.FAILED)
        .order_by("id")
        .values_list("id", flat=True)[:batch_size]
    )


def refund_failed_jobs(
    job_ids: list[int] | None = None, on_each: Callable[[int, int | None], None] | None = None
) -> list[int]:
    """Refund failed jobs (default: all currently failed); returns the ids refunded."""
    refunded = []
    for job_id in failed_job_ids() if job_ids is None else job_ids:
        error = Job.objects.filter(pk=job_id).values_list("error", flat=True).first() or ""
        points = refund_failed_job(job_id, error)
        if points is not None:
            refunded.append(job_id)
        if on_each is not None:
            on_each(job_id, points)
    return refunded


def sweep() -> SweepResult:
    """One reaper pass: fail stuck `running` jobs, then refund every `failed` job."""
    require_no_transaction("sweeping jobs")
    reaped = reap_stuck_jobs()
    return SweepResult(reaped=reaped, refunded=refund_failed_jobs())
