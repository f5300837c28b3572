"""The worker's leases: claim a job, keep it alive, record its outcome or release it.

The life of a job on the worker side:

  1. claim  — `pending → running` (attempts + 1, started/heartbeat at), committed at once;
  2. run    — the handler runs OUTSIDE any DB transaction (no locks held for minutes),
              while a heartbeat thread keeps `heartbeat_at` fresh;
  3. record — `running → completed` + result, or `running → failed` + error, by a
              conditional UPDATE that only matches while this worker still holds the
              lease (status `running` and the same `attempts`), so a job reaped or
              refunded meanwhile is never overwritten;
  4. refund — a failed job is refunded by `wallet.services.refund_job`, whose reference
              `job:<id>` makes a second refund of the same job impossible; the job
              ends `refunded`.

Steps 3 and 4 are separate transactions on purpose: `refund_job` locks the wallet
before the job (the order every money path uses); failing the job inside it would
lock them the other way round. A crash between the two leaves a `failed` job that the
next sweep (`sweep()`: every worker pass, and `manage.py reap_jobs`) refunds.
A worker that dies mid-job leaves a `running` job whose heartbeat goes stale; the sweep
fails it (conditionally, so a live worker's fresh heartbeat wins) and refunds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.db.models.functions import Now

from jobs.models import Job, JobStatus

logger = logging.getLogger("jobs.worker")

ERROR_MAX_LENGTH = 2000
RECORD_ATTEMPTS = 3  # tries to record an outcome when the database connection drops


@dataclass(frozen=True)
class Lease:
    """A claimed job as its worker holds it. `attempt` is the fencing token."""

    job_id: int
    job_type: str
    user_id: int
    points: int
    attempt: int
    job_input: dict = field(default_factory=dict)

    def held(self):
        """The job row, only while this exact lease is still current."""
        return Job.objects.filter(pk=self.job_id, status=JobStatus.RUNNING, attempts=self.attempt)


# --- Settings -------------------------------------------------------------------------


def running_timeout() -> float:
    return float(settings.JOBS_RUNNING_TIMEOUT_SECONDS)


def heartbeat_interval() -> float:
    """Well inside the timeout: several missed beats are needed before a reap."""
    explicit = getattr(settings, "JOBS_HEARTBEAT_SECONDS", None)
    if explicit:
        return float(explicit)
    return max(0.05, min(30.0, running_timeout() / 5))


def claim_next_job() -> Lease | None:
    """Claim the oldest pending job (committed), or None when the queue is empty."""
    require_no_transaction("claiming a job")
    job = Job.objects.claim_next()
    if job is None:
        return None
    return Lease(
        job_id=job.pk,
        job_type=job.job_type.code,
        user_id=job.user_id,
        points=job.points_used,
        attempt=job.attempts,
        job_input=job.input or {},
    )


def heartbeat(lease: Lease) -> bool:
    """Refresh the lease; False means it is lost (reaped, refunded or released)."""
    return lease.held().update(heartbeat_at=Now(), updated_at=Now()) == 1


def complete_job(lease: Lease, result: dict) -> bool:
    """`running → completed` with the result, only if the lease is still ours."""

    def record() -> bool:
        updated = lease.held().update(
            status=JobStatus.COMPLETED,
            result=result,
            error="",
            heartbeat_at=Now(),
            finished_at=Now(),
            updated_at=Now(),
        )
        return updated == 1 or _already_recorded(lease, JobStatus.COMPLETED)

    return _with_db_retries(record)


def fail_job(lease: Lease, error: str) -> bool:
    """`running → failed` with the error, only if the lease is still ours."""
    error = clean_text(error, ERROR_MAX_LENGTH)

    def record() -> bool:
        updated = lease.held().update(
            status=JobStatus.FAILED,
            error=error,
            heartbeat_at=Now(),
            finished_at=Now(),
            updated_at=Now(),
        )
        return updated == 1 or _already_recorded(lease, JobStatus.FAILED)

    return _with_db_retries(record)


def release_job(lease: Lease) -> bool:
    """`running → pending` (graceful stop): another worker will run it from scratch.

    The job keeps its incremented `attempts`, so the old lease can no longer record
    anything if its handler happens to finish after all.
    """
    updated = lease.held().update(
        status=JobStatus.PENDING, started_at=None, heartbeat_at=None, updated_at=Now()
    )
    return updated == 1


# --- Helpers ------------------------------------------------------------------------------


def _already_recorded(lease: Lease, status: str) -> bool:
    """After a retried UPDATE: did our first attempt commit although we lost the reply?"""
    return Job.objects.filter(pk=lease.job_id, attempts=lease.attempt, status=status).exists()


def _with_db_retries(record: Callable[[], bool]) -> bool:
    """Record an outcome, reconnecting a few times if the connection drops.

    If it still fails the job stays `running`, its heartbeat goes stale and the reaper
    fails and refunds it: the user never pays for a result nobody stored.
    """
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            return record()
        except (OperationalError, InterfaceError) as exc:
            if attempt == RECORD_ATTEMPTS:
                raise
            logger.warning("recording a job outcome failed (%s); retrying", exc)
            connection.close()
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def clean_text(text: str, max_length: int) -> str:
    """Handler errors end up in text columns: PostgreSQL refuses NUL, columns have limits."""
    return text.replace("\x00", "")[:max_length]


def require_no_transaction(what: str) -> None:
    if connection.in_atomic_block:
        raise RuntimeError(f"{what} must happen outside any database transaction")
