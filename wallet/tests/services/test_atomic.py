"""The retry wrapper: only 40001/40P01, a bounded number of times, never inside an outer atomic.

The failures are real PostgreSQL errors (raised by the server with that SQLSTATE), not
mocks, so the test also proves Django hands psycopg's sqlstate through as `__cause__`.
"""

from __future__ import annotations

import pytest
from django.db import DatabaseError, OperationalError, connection, transaction
from django.test import override_settings

from divine_whispers.db.transactions import run_atomically

pytestmark = pytest.mark.django_db(transaction=True)


def _server_error(condition: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{condition}'; END $$"
        )


def _failing(times: int, condition: str):
    attempts: list[int] = []

    def operation() -> str:
        attempts.append(1)
        if len(attempts) <= times:
            _server_error(condition)
        return "done"

    return operation, attempts


@pytest.mark.parametrize("condition", ["serialization_failure", "deadlock_detected"])
def test_serialization_failures_and_deadlocks_are_retried(condition):
    operation, attempts = _failing(2, condition)
    assert run_atomically(operation) == "done"
    assert len(attempts) == 3


def test_retries_are_bounded():
    operation, attempts = _failing(99, "serialization_failure")
    with override_settings(WALLET_TRANSACTION_ATTEMPTS=4), pytest.raises(OperationalError):
        run_atomically(operation)
    assert len(attempts) == 4


@pytest.mark.parametrize("condition", ["unique_violation", "lock_not_available", "query_canceled"])
def test_other_errors_are_not_retried(condition):
    operation, attempts = _failing(1, condition)
    with pytest.raises(DatabaseError):
        run_atomically(operation)
    assert len(attempts) == 1


def test_never_retried_inside_an_outer_atomic_block():
    operation, attempts = _failing(1, "serialization_failure")
    with pytest.raises(OperationalError), transaction.atomic():
        run_atomically(operation)
    assert len(attempts) == 1
