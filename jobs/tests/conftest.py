"""Fixtures for the worker tests: they run with real commits (transaction=True),
because a worker must commit its claim before it runs a handler."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from jobs.tests import handlers_for_tests
from jobs.tests.handlers_for_tests import create_invocation_table, drop_invocation_table

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fast_worker(settings):
    """Many spends per user, short polls; the timeout stays long unless a test shortens it."""
    settings.WALLET_VELOCITY_LIMIT = 10**6
    settings.JOBS_POLL_INTERVAL_SECONDS = 0.05
    return settings


@pytest.fixture
def invocation_table(transactional_db) -> Iterator[Callable[[], list]]:
    create_invocation_table()
    try:
        yield handlers_for_tests.invocations
    finally:
        drop_invocation_table()


def database_url() -> str:
    """The test database as a URL, for worker subprocesses."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"


class WorkerProcess:
    """A real `manage.py run_jobs` process on the test database."""

    def __init__(self, log: Path, args: list[str], env: dict[str, str]) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_jobs", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture
def start_worker(tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes; each is killed at teardown if still alive."""
    started: list[WorkerProcess] = []

    def _start(*args: str, **env_overrides: str) -> WorkerProcess:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            # A worker with DEBUG off refuses to start without its secrets; the audit key
            # must be this process's, so the events both write form one valid chain.
            "SECRET_KEY": settings.SECRET_KEY,
            "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEY,
            "JOBS_HANDLER_MODULES": "jobs.tests.handlers_for_tests",
            "JOBS_POLL_INTERVAL_SECONDS": "0.05",
            "PYTHONUNBUFFERED": "1",
            **env_overrides,
        }
        worker = WorkerProcess(tmp_path / f"worker-{len(started) + 1}.log", list(args), env)
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        worker.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    """Poll a condition (an event we wait for, not a timing we assert)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)
