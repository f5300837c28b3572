"""The worker loop behind `manage.py run_jobs`: N threads claiming jobs side by side.

Each thread has its own database connection (Django's are per thread) and closes it
when it ends. Nothing here must agree with other processes: claims, leases and
refunds are decided in the database, so any number of `run_jobs` processes can run
next to each other. The only in-process state is which leases this process holds,
used to release them on a forced stop.

Every sweep also books the expiry of promotional lots past their `expires_at`
(`wallet.services.expire_points`, exactly once per lot however many workers sweep).

Stopping: `request_stop()` (first SIGTERM/SIGINT) stops claiming and lets every
running handler finish and be recorded; after `grace_seconds`, or on
`request_release()` (a second signal), the leases still held go back to `pending`
for another worker, and `run()` returns.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, connections

from jobs import services
from jobs.services import JobOutcome, Lease, SweepResult
from wallet import services as wallet_services

logger = logging.getLogger("jobs.worker")

MAX_CONSECUTIVE_ERRORS_ONCE = 5  # `--once` gives up instead of retrying forever
# A webhook event younger than this is left to the request that received it.
PROVIDER_EVENT_MIN_AGE = timedelta(seconds=30)


@dataclass
class WorkerStats:
    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


Reporter = Callable[[str, str], None]  # (worker name, message)


class WorkerPool:
    def __init__(
        self,
        *,
        concurrency: int = 1,
        once: bool = False,
        poll_interval: float | None = None,
        sweep_interval: float | None = None,
        report: Reporter | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.once = once
        self.poll_interval = (
            settings.JOBS_POLL_INTERVAL_SECONDS if poll_interval is None else poll_interval
        )
        # Reap at least twice per timeout even when the queue never runs dry.
        self.sweep_interval = (
            max(0.5, min(60.0, services.running_timeout() / 2))
            if sweep_interval is None
            else sweep_interval
        )
        self.report = report or _log
        self.stats = WorkerStats()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stop_event = threading.Event()
        self.release_event = threading.Event()
        self._stop_requested_at: float | None = None
        self._held: dict[int, Lease] = {}
        self._held_lock = threading.Lock()
        self.errors: list[BaseException] = []

    # --- control (safe to call from a signal handler: only sets events) ---------------

    def request_stop(self) -> None:
        self.stop_event.set()

    def request_release(self) -> None:
        self.stop_event.set()
        self.release_event.set()

    # --- main thread -----------------------------------------------------------------

    def run(self, grace_seconds: float | None = None) -> dict[str, int]:
        """Start the worker threads and wait for them; returns the counters."""
        threads = [
            threading.Thread(target=self._work, args=(i + 1,), name=f"jobs-worker-{i + 1}")
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.daemon = True  # a forced stop must not wait for a stuck handler
            thread.start()
        announced = False
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.1)
            if self.stop_event.is_set() and not announced:
                announced = True
                self._stop_requested_at = time.monotonic()
                self.report(self.name, f"stopping: finishing {len(self._held)} running job(s)")
            if self._must_release(grace_seconds):
                self._release_held()
                break
        connections.close_all()
        return self.stats.snapshot()

    def _must_release(self, grace_seconds: float | None) -> bool:
        if self.release_event.is_set():
            return True
        if grace_seconds is None or self._stop_requested_at is None:
            return False
        return time.monotonic() - self._stop_requested_at >= grace_seconds

    def _release_held(self) -> None:
        with self._held_lock:
            leases = list(self._held.values())
        try:
            for lease in leases:
                released = services.release_job(lease)
                self.stats.add("released" if released else "release_lost")
                self.report(
                    self.name,
                    f"job {lease.job_id} {lease.job_type} released back to pending"
                    if released
                    else f"job {lease.job_id} had already been recorded",
                )
        finally:
            connections.close_all()

    # --- worker threads -----------------------------------------------------------------

    def _work(self, index: int) -> None:
        name = f"w{index}"
        errors = 0
        last_sweep = float("-inf")
        try:
            while not self.stop_event.is_set():
                try:
                    if time.monotonic() - last_sweep >= self.sweep_interval:
                        self._sweep(name)
                        last_sweep = time.monotonic()
                    if self._run_one(name):
                        errors = 0
                        continue
                    # Queue empty: a --once worker makes one last sweep, then leaves.
                    if self.once:
                        swept = self._sweep(name)
                        last_sweep = time.monotonic()
                        if not swept and not self._queue_has_work():
                            return
                        continue
                    errors = 0
                    self.stop_event.wait(self.poll_interval)
                except DatabaseError as exc:
                    errors += 1
                    self.stats.add("db_errors")
                    self.report(name, f"database error ({exc}); retrying")
                    connection.close()
                    if self.once and errors >= MAX_CONSECUTIVE_ERRORS_ONCE:
                        raise
                    self.stop_event.wait(min(30.0, 0.5 * 2**errors))
        except BaseException as exc:
            self.errors.append(exc)  # list.append is atomic; run()'s caller reports it
            logger.exception("worker %s stopped by an error", name)
        finally:
            connections.close_all()

    def _run_one(self, name: str) -> bool:
        lease = services.claim_next_job()
        if lease is None:
            return False
        with self._held_lock:
            self._held[lease.job_id] = lease
        try:
            outcome = services.run_claimed_job(lease)
        finally:
            with self._held_lock:
                self._held.pop(lease.job_id, None)
        self.stats.add(str(outcome.status))
        self.report(name, _describe(outcome))
        return True

    def _sweep(self, name: str) -> SweepResult:
        self._retry_provider_events(name)
        swept = services.sweep()
        expired = wallet_services.expire_points()
        if expired.rows:
            self.stats.add("lots_expired", len(expired.rows))
            self.report(name, f"expired {expired.points:,d} pts in {len(expired.rows)} lot(s)")
        for job_id in swept.reaped:
            self.stats.add("reaped")
            self.report(name, f"job {job_id} reaped: no heartbeat within the timeout")
        for job_id in swept.refunded:
            self.stats.add("sweep_refunded")
            self.report(name, f"job {job_id} refunded by the sweep")
        return swept

    def _retry_provider_events(self, name: str) -> None:
        """The payment provider's webhook events whose processing failed (provider down,
        an error) are retried here too, like `manage.py process_provider_events`."""
        retried = wallet_services.process_pending_events(min_age=PROVIDER_EVENT_MIN_AGE)
        for status, count in retried.items():
            self.stats.add(f"provider_events_{status}", count)
            self.report(name, f"{count} provider event(s) retried: {status}")

    @staticmethod
    def _queue_has_work() -> bool:
        from jobs.models import Job, JobStatus

        return Job.objects.filter(status=JobStatus.PENDING).exists()


def _describe(outcome: JobOutcome) -> str:
    head = f"job {outcome.job_id} {outcome.job_type}"
    took = f"in {outcome.seconds:.2f}s"
    if outcome.status == "completed":
        return f"{head}: completed {took}"
    if outcome.status == "refunded":
        return f"{head}: failed {took} ({outcome.error}) → refunded {outcome.refunded_points} pts"
    if outcome.status == "lost":
        return f"{head}: lease lost {took} (reaped, refunded or released); result discarded"
    return f"{head}: failed {took} ({outcome.error}); refund left to the next sweep"


def _log(worker: str, message: str) -> None:
    """One log line per event; the worker's name is also a field of its own (JSON)."""
    logger.info("[%s] %s", worker, message, extra={"worker": worker})
