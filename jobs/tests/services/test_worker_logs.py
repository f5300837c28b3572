"""`run_jobs` in production mode writes only JSON lines on stdout (monitoring.md's promise).

A real worker process with DEBUG off and no LOG_FORMAT (so JSON, the production default)
drains a queue holding one job: every stdout line must parse as one JSON object, and the
job's line must be among them, with the worker's name as a field of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from jobs.models import JobStatus
from jobs.tests.conftest import PROJECT_ROOT, database_url
from wallet import services as wallet_services

pytestmark = pytest.mark.django_db(transaction=True)


def run_worker(log_format: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"LOG_FORMAT", "DEBUG"}}
    env.update(
        DATABASE_URL=database_url(),
        SECRET_KEY=settings.SECRET_KEY,
        AUDIT_HMAC_KEY=settings.AUDIT_HMAC_KEY,
    )
    if log_format:
        env["LOG_FORMAT"] = log_format
    return subprocess.run(
        [sys.executable, "manage.py", "run_jobs", "--once"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_every_stdout_line_of_the_worker_is_json(user, fund, job_type):
    fund(user, 100)
    job = wallet_services.spend(user=user, job_type="fortune").job

    done = run_worker(None)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    records = [json.loads(line) for line in lines]  # raises on any plain line
    assert all(isinstance(record, dict) for record in records)
    job_lines = [r for r in records if f"job {job.pk} fortune: completed" in r["message"]]
    assert len(job_lines) == 1, lines
    assert job_lines[0]["logger"] == "jobs.worker" and job_lines[0]["level"] == "INFO"
    assert job_lines[0]["worker"]
    assert any("run_jobs finished" in r["message"] for r in records)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


def test_with_log_format_text_the_lines_are_readable(user, fund, job_type):
    fund(user, 100)
    job = wallet_services.spend(user=user, job_type="fortune").job

    done = run_worker("text")

    assert done.returncode == 0, done.stderr
    assert "INFO jobs.worker [" in done.stdout
    assert f"job {job.pk} fortune: completed" in done.stdout
    assert not done.stdout.lstrip().startswith("{")
