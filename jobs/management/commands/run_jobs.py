"""`manage.py run_jobs`: the job worker. Thin: options and signals here, the loop in
jobs/worker.py, every state change in the jobs/services/ package.

Every line the worker writes goes through logging (logger `jobs.worker`), so with
LOG_FORMAT=json — the default when DEBUG is off — each stdout line is one JSON object, as
docs/operations/monitoring.md promises; with LOG_FORMAT=text it is a readable line."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError, CommandParser

from divine_whispers.db.bounds import process_bounds
from divine_whispers.observability.metrics import serve_process_metrics
from jobs.worker import WorkerPool


class Command(BaseCommand):
    help = (
        "Run paid jobs: claim pending jobs (SELECT … FOR UPDATE SKIP LOCKED), run their "
        "handlers, record the result, refund failures, reap stuck jobs. Safe to run in "
        "several processes at once. SIGTERM/SIGINT: finish running jobs and exit; a second "
        "signal (or the grace period running out) releases them back to pending."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="drain the queue (and sweep), then exit"
        )
        parser.add_argument("--concurrency", type=int, default=1, help="worker threads (default 1)")
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=None,
            help="seconds to wait when the queue is empty (default JOBS_POLL_INTERVAL_SECONDS)",
        )
        parser.add_argument(
            "--grace-seconds",
            type=float,
            default=25.0,
            help="after SIGTERM/SIGINT, how long running jobs may take to finish before "
            "they are released back to pending (default 25)",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=int(os.environ.get("JOBS_METRICS_PORT", "0") or 0),
            help="serve this worker's Prometheus counters (job refunds …) on this port "
            "(default JOBS_METRICS_PORT; 0: off). Job counts by status are on the app's /metrics.",
        )
        parser.add_argument(
            "--metrics-addr",
            default=os.environ.get("JOBS_METRICS_ADDR", "127.0.0.1"),
            help="address for --metrics-port (default JOBS_METRICS_ADDR or 127.0.0.1)",
        )

    def handle(self, *args, **options) -> None:
        if not 1 <= options["concurrency"] <= 64:
            raise CommandError("--concurrency must be between 1 and 64")
        if options["metrics_port"]:
            serve_process_metrics(options["metrics_port"], options["metrics_addr"])
        pool = WorkerPool(
            concurrency=options["concurrency"],
            once=options["once"],
            poll_interval=options["poll_interval"],
        )
        report = pool.report
        mode = "draining the queue once" if options["once"] else "waiting for jobs"
        report(pool.name, f"run_jobs started: {pool.concurrency} thread(s), {mode}")
        # DATABASE_WORKER_TIMEOUT_SECONDS, not a request's bounds (divine_whispers/db/bounds.py).
        with _stop_signals(pool), process_bounds("worker"):
            counts = pool.run(grace_seconds=options["grace_seconds"])
        summary = ", ".join(f"{key} {value}" for key, value in sorted(counts.items()))
        report(pool.name, f"run_jobs finished: {summary or 'no jobs'}")
        if pool.errors:
            raise CommandError(f"a worker thread failed: {pool.errors[0]!r}")


@contextmanager
def _stop_signals(pool: WorkerPool):
    """First SIGTERM/SIGINT: stop claiming, finish; second: release and exit.

    The handlers only set events (no I/O), which is all a signal handler may safely do.
    Signals can only be installed from the main thread (call_command from a test
    thread simply runs without them).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame) -> None:
        if pool.stop_event.is_set():
            pool.request_release()
        else:
            pool.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
