"""How the bounds reach PostgreSQL: session defaults on a connection made under them,
SET LOCAL at the start of a transaction otherwise — after a `SET TRANSACTION`, which must
stay the transaction's first statement (verify_ledger reads REPEATABLE READ)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from divine_whispers.db.bounds import Bounds, database_bounds, named_bounds

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
