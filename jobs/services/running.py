"""Running a claimed job: its handler outside any transaction, with a heartbeat thread.

The handler's result (or error) is then recorded through the lease, and a failed job is
refunded at once; if that refund cannot happen now, the next sweep does it.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, connections

from jobs.handlers import JobContext, get_handler
from jobs.models import JobStatus
from jobs.services import leases
from jobs.services.leases import Lease
from jobs.services.sweeping import refund_failed_job

logger = logging.getLogger("jobs.worker")

RESULT_MAX_BYTES = 64 * 1024


@dataclass
class JobOutcome:
    """What happened to one claimed job (for logs and counters; the DB is the truth)."""

    job_id: int
    job_type: str
    status: str  # completed | refunded | failed | lost
    seconds: float
    error: str = ""
    refunded_points: int = 0


def run_claimed_job(lease: Lease) -> JobOutcome:
    """Run the lease's handler outside any transaction, then record and refund.

    A job type without a handler fails (and is refunded) like a handler that raised:
    the user paid for something this deployment cannot deliver.
    """
    leases.require_no_transaction("running a job handler")
    started = time.monotonic()
    result, error = _call_handler(lease)
    if error is None:
        recorded = leases.complete_job(lease, result)
        status = JobStatus.COMPLETED if recorded else "lost"
        return JobOutcome(lease.job_id, lease.job_type, status, time.monotonic() - started)
    if not leases.fail_job(lease, error):
        return JobOutcome(lease.job_id, lease.job_type, "lost", time.monotonic() - started, error)
    points = _refund_quietly(lease.job_id, error)
    status = JobStatus.REFUNDED if points is not None else JobStatus.FAILED
    return JobOutcome(
        lease.job_id, lease.job_type, status, time.monotonic() - started, error, points or 0
    )


def process_next_job() -> JobOutcome | None:
    """Claim and run one job; None when nothing is pending."""
    lease = leases.claim_next_job()
    return run_claimed_job(lease) if lease is not None else None


def _call_handler(lease: Lease) -> tuple[dict | None, str | None]:
    handler = get_handler(lease.job_type)
    if handler is None:
        return None, f"no handler registered for job type {lease.job_type!r}"
    context = JobContext(
        job_id=lease.job_id, job_type=lease.job_type, user_id=lease.user_id, attempt=lease.attempt
    )
    with _Heartbeat(lease):
        try:
            result = handler(copy.deepcopy(lease.job_input), context)
            _check_result(result)
        except Exception as exc:  # any handler bug fails the job, never the worker
            logger.warning("job %s (%s) handler failed: %r", lease.job_id, lease.job_type, exc)
            return None, f"{type(exc).__name__}: {exc}"
    return result, None


def _check_result(result: Any) -> None:
    if not isinstance(result, dict):
        raise TypeError(f"handler returned {type(result).__name__}, not a dict")
    # Raises for values JSON (and PostgreSQL's jsonb) cannot hold: objects, NaN, \u0000.
    dumped = json.dumps(result, allow_nan=False)
    if "\\u0000" in dumped:
        raise ValueError("handler result contains a NUL character")
    size = len(dumped.encode())
    if size > RESULT_MAX_BYTES:
        raise ValueError(f"handler result is {size} bytes, more than {RESULT_MAX_BYTES}")


def _refund_quietly(job_id: int, error: str) -> int | None:
    """Refund now; if the database hiccups, the next sweep refunds the failed job."""
    try:
        return refund_failed_job(job_id, error)
    except DatabaseError as exc:
        logger.warning("job %s failed; refund deferred to the next sweep: %s", job_id, exc)
        connection.close()
        return None


class _Heartbeat:
    """Refreshes `heartbeat_at` from a helper thread while a handler runs.

    The thread opens its own connection only when it first beats (Django connects
    lazily), so short jobs cost nothing, and closes it when the job ends.
    """

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-job-{lease.job_id}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = leases.heartbeat_interval()
        give_up_at = time.monotonic() + float(settings.JOBS_MAX_RUN_SECONDS)
        try:
            while not self._stop.wait(interval):
                if time.monotonic() > give_up_at:
                    logger.warning(
                        "job %s: handler still running after JOBS_MAX_RUN_SECONDS=%s; "
                        "no more heartbeats, the reaper will fail and refund it",
                        self.lease.job_id,
                        settings.JOBS_MAX_RUN_SECONDS,
                    )
                    return
                try:
                    if not leases.heartbeat(self.lease):
                        logger.warning("job %s: lease lost while running", self.lease.job_id)
                        self.lost.set()
                        return
                except DatabaseError as exc:
                    logger.warning("job %s: heartbeat failed: %s", self.lease.job_id, exc)
                    connection.close()
        finally:
            connections.close_all()


def iter_outcomes(limit: int | None = None) -> Iterator[JobOutcome]:
    """Drain the queue in this thread (used by tests and the shell)."""
    count = 0
    while limit is None or count < limit:
        outcome = process_next_job()
        if outcome is None:
            return
        count += 1
        yield outcome
