"""Job services: job type writes (admin) and the worker's job state transitions.

Job types: a price is what users are charged, so every change is audited
(`save_job_type`). Jobs: money moves only via wallet.services.

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

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

from audit.models import AuditEvent
from audit.services import record_system_event
from divine_whispers.errors import DomainError
from divine_whispers.money import validate_positive_amount
from jobs.handlers import JobContext, get_handler
from jobs.models import Job, JobStatus, JobType
from wallet import services as wallet_services

logger = logging.getLogger("jobs.worker")

ERROR_MAX_LENGTH = 2000
REFUND_REASON_MAX_LENGTH = 500  # divine_whispers.money.REASON_MAX_LENGTH
RESULT_MAX_BYTES = 64 * 1024
RECORD_ATTEMPTS = 3  # tries to record an outcome when the database connection drops


# --- Job types -----------------------------------------------------------------------------

PRICE_CHANGED_ACTION = "jobtype.price_changed"


def save_job_type(*, job_type: JobType, actor: AbstractBaseUser | None) -> AuditEvent | None:
    """Save a job type; a new or changed price writes a `jobtype.price_changed` event.

    The row is locked while the old price is read, so two staff members editing the
    same job type record two consecutive changes (old → new) instead of both claiming
    the same old price. The event is written in the save's DB transaction: either the
    price and its audit event commit together, or neither does. A new job type counts
    as a price change from `None`, so every price users were ever charged is audited.
    """
    new_price = validate_positive_amount(
        job_type.price, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT, field="price"
    )
    with transaction.atomic():
        old_price = None
        if job_type.pk is not None:
            old_price = (
                JobType.objects.select_for_update()
                .filter(pk=job_type.pk)
                .values_list("price", flat=True)
                .first()
            )
        job_type.save()
        if old_price == new_price:
            return None
        return record_system_event(
            action=PRICE_CHANGED_ACTION,
            actor=actor,
            metadata={"code": job_type.code, "old": old_price, "new": new_price},
        )


# --- Worker ----------------------------------------------------------------------------------


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


@dataclass
class JobOutcome:
    """What happened to one claimed job (for logs and counters; the DB is the truth)."""

    job_id: int
    job_type: str
    status: str  # completed | refunded | failed | lost
    seconds: float
    error: str = ""
    refunded_points: int = 0


@dataclass
class SweepResult:
    reaped: list[int] = field(default_factory=list)
    refunded: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.reaped or self.refunded)


# --- Settings -------------------------------------------------------------------------


def running_timeout() -> float:
    return float(settings.JOBS_RUNNING_TIMEOUT_SECONDS)


def heartbeat_interval() -> float:
    """Well inside the timeout: several missed beats are needed before a reap."""
    explicit = getattr(settings, "JOBS_HEARTBEAT_SECONDS", None)
    if explicit:
        return float(explicit)
    return max(0.05, min(30.0, running_timeout() / 5))


# --- Claim, heartbeat, record -------------------------------------------------------------


def claim_next_job() -> Lease | None:
    """Claim the oldest pending job (committed), or None when the queue is empty."""
    _require_no_transaction("claiming a job")
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
    error = _clean_text(error, ERROR_MAX_LENGTH)

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
            reason=_clean_text(reason, REFUND_REASON_MAX_LENGTH),
            final_status=JobStatus.REFUNDED,
            allowed_statuses=(JobStatus.FAILED,),
        )
    except DomainError as exc:
        logger.warning("job %s not refunded: %s (%s)", job_id, exc.code, exc.details)
        return None
    return refunded.transaction.amount if refunded.transaction is not None else 0


# --- Running a claimed job ----------------------------------------------------------------


def run_claimed_job(lease: Lease) -> JobOutcome:
    """Run the lease's handler outside any transaction, then record and refund.

    A job type without a handler fails (and is refunded) like a handler that raised:
    the user paid for something this deployment cannot deliver.
    """
    _require_no_transaction("running a job handler")
    started = time.monotonic()
    result, error = _call_handler(lease)
    if error is None:
        recorded = complete_job(lease, result)
        status = JobStatus.COMPLETED if recorded else "lost"
        return JobOutcome(lease.job_id, lease.job_type, status, time.monotonic() - started)
    if not fail_job(lease, error):
        return JobOutcome(lease.job_id, lease.job_type, "lost", time.monotonic() - started, error)
    points = _refund_quietly(lease.job_id, error)
    status = JobStatus.REFUNDED if points is not None else JobStatus.FAILED
    return JobOutcome(
        lease.job_id, lease.job_type, status, time.monotonic() - started, error, points or 0
    )


def process_next_job() -> JobOutcome | None:
    """Claim and run one job; None when nothing is pending."""
    lease = claim_next_job()
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
        interval = heartbeat_interval()
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
                    if not heartbeat(self.lease):
                        logger.warning("job %s: lease lost while running", self.lease.job_id)
                        self.lost.set()
                        return
                except DatabaseError as exc:
                    logger.warning("job %s: heartbeat failed: %s", self.lease.job_id, exc)
                    connection.close()
        finally:
            connections.close_all()


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
    _require_no_transaction("sweeping jobs")
    reaped = reap_stuck_jobs()
    return SweepResult(reaped=reaped, refunded=refund_failed_jobs())


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


def _clean_text(text: str, max_length: int) -> str:
    """Handler errors end up in text columns: PostgreSQL refuses NUL, columns have limits."""
    return text.replace("\x00", "")[:max_length]


def _require_no_transaction(what: str) -> None:
    if connection.in_atomic_block:
        raise RuntimeError(f"{what} must happen outside any database transaction")


def iter_outcomes(limit: int | None = None) -> Iterator[JobOutcome]:
    """Drain the queue in this thread (used by tests and the shell)."""
    count = 0
    while limit is None or count < limit:
        outcome = process_next_job()
        if outcome is None:
            return
        count += 1
        yield outcome
