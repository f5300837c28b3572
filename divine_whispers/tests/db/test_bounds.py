"""How the bounds reach PostgreSQL: session defaults on a connection made under them,
SET LOCAL at the start of a transaction otherwise — after a `SET TRANSACTION`, which must
stay the transaction's first statement (verify_ledger reads REPEATABLE READ)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from divine_whispers.db.bounded_postgresql.base import DatabaseWrapper
from divine_whispers.db.bounds import (
    Bounds,
    database_bounds,
    end_request_budget,
    named_bounds,
    start_request_budget,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _show(cursor, name: str) -> str:
    cursor.execute(f"SHOW {name}")
    return cursor.fetchone()[0]


def test_a_connection_made_under_the_request_bounds_carries_them_as_session_defaults():
    connection.close()
    try:
        with database_bounds("request"), connection.cursor() as cursor:  # autocommit
            assert _show(cursor, "statement_timeout") == "5s"
            assert _show(cursor, "lock_timeout") == "3s"
            assert _show(cursor, "idle_in_transaction_session_timeout") == "5s"
    finally:
        connection.close()


@pytest.fixture
def set_locals(monkeypatch) -> list[str]:
    """The name of each profile a transaction had to SET LOCAL."""
    seen: list[str] = []
    original = DatabaseWrapper.set_bounds

    def spy(self, wanted, deadline):
        seen.append(wanted.name)
        return original(self, wanted, deadline)

    monkeypatch.setattr(DatabaseWrapper, "set_bounds", spy)
    return seen


def test_a_named_block_that_opens_the_connection_in_a_request_leaves_it_the_request_bounds(
    set_locals,
):
    """/healthz's `health` block often opens a server thread's connection: the requests that
    reuse it must run under their own bounds, with no SET LOCAL round trip each."""
    connection.close()
    budget = start_request_budget()
    try:
        with database_bounds("health"), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        with connection.cursor() as cursor:  # the request's autocommit read
            assert _show(cursor, "statement_timeout") == "5s"
        with transaction.atomic(), connection.cursor() as cursor:
            assert _show(cursor, "lock_timeout") == "3s"
        assert set_locals == []
        with database_bounds("report"), transaction.atomic(), connection.cursor() as cursor:
            assert _show(cursor, "statement_timeout") == "30s"  # a longer block: its own
        assert set_locals == ["report"]
    finally:
        end_request_budget(budget)
        connection.close()


def test_after_healthz_opened_the_connection_a_spend_sets_nothing_local(
    set_locals, client, user, fund, job_type
):
    fund(user, 50)
    client.force_login(user)
    connection.close()  # the next connection is opened by /healthz, in its request
    assert client.get("/healthz").status_code == 200
    spent = client.post("/api/v1/wallet/spend", {"job_type": job_type.code}, "application/json")
    assert spent.status_code == 201, spent.content
    assert set_locals == []


def test_longer_named_bounds_are_set_local_in_their_transaction():
    connection.close()
    connection.ensure_connection()  # made outside any block: the `command` session defaults
    with database_bounds("report"), transaction.atomic(), connection.cursor() as cursor:
        assert _show(cursor, "statement_timeout") == "30s"
        assert _show(cursor, "lock_timeout") == "30s"
    with connection.cursor() as cursor:  # the transaction is over: the session's own again
        assert _show(cursor, "statement_timeout") == "0"


def test_set_transaction_stays_first_and_the_bounds_follow_it():
    connection.close()
    connection.ensure_connection()
    with database_bounds("verify_ledger"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        assert _show(cursor, "transaction_isolation") == "repeatable read"
        assert _show(cursor, "statement_timeout") == "30min"


def test_zero_means_no_bound_and_milliseconds_are_rounded():
    assert named_bounds("command").server_settings()["statement_timeout"] == "0"
    assert Bounds("x", 0.0004, 2.5, 1).server_settings() == {
        "statement_timeout": "1",
        "lock_timeout": "2500",
        "idle_in_transaction_session_timeout": "1000",
    }
