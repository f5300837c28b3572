"""Handlers only the tests register (in-process by import, in a worker *process* via
`JOBS_HANDLER_MODULES=jobs.tests.handlers_for_tests`).

Every invocation inserts a row into `jobs_test_invocation` before doing anything
else: a side effect visible in the database from any process, so a test can count
exactly how many times each job's handler ran, whichever worker ran it.
"""

from __future__ import annotations

import os
import threading
import time

from django.db import connection

from jobs.handlers import JobContext, register

INVOCATION_TABLE = "jobs_test_invocation"
COUNTED = "test-counted"
SLOW = "test-slow"


def create_invocation_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {INVOCATION_TABLE} ("
            " id bigserial PRIMARY KEY, job_id bigint NOT NULL, attempt int NOT NULL,"
            " pid int NOT NULL, thread text NOT NULL)"
        )
        cursor.execute(f"TRUNCATE {INVOCATION_TABLE}")


def drop_invocation_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {INVOCATION_TABLE}")


def invocations() -> list[tuple[int, int, int, str]]:
    """(job_id, attempt, pid, thread) of every handler call so far."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT job_id, attempt, pid, thread FROM {INVOCATION_TABLE} ORDER BY id")
        return list(cursor.fetchall())


def record_invocation(context: JobContext) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {INVOCATION_TABLE} (job_id, attempt, pid, thread)"
            " VALUES (%s, %s, %s, %s)",
            [context.job_id, context.attempt, os.getpid(), threading.current_thread().name],
        )


@register(COUNTED, replace=True)
def counted(job_input: dict, context: JobContext) -> dict:
    """Counts itself, sleeps `sleep` seconds if asked, raises when the input says `fail`."""
    record_invocation(context)
    time.sleep(float(job_input.get("sleep", 0)))
    if job_input.get("fail"):
        raise RuntimeError(f"requested failure of job {context.job_id}")
    return {"echo": job_input, "job_id": context.job_id}


@register(SLOW, replace=True)
def slow(job_input: dict, context: JobContext) -> dict:
    """Counts itself, then sleeps `seconds` (a job long enough to be killed mid-run)."""
    record_invocation(context)
    time.sleep(float(job_input.get("seconds", 1)))
    return {"slept": job_input.get("seconds", 1)}
