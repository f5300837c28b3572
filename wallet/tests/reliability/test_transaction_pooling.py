"""DATABASE_TRANSACTION_POOLING: nothing outlives a transaction on the server.

Behind PgBouncer in transaction mode one Django connection's transactions run on
whichever server connection is free, so a named prepared statement or a WITH HOLD
cursor left on one is missing (or already exists) on the next. These tests look at the
server itself (`pg_prepared_statements` of the session, the cursor classes psycopg
uses) rather than at our flags; the
end-to-end run through a real PgBouncer is in test_pgbouncer.py.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.db.utils import load_backend

from divine_whispers.db.config import (
    POOLED_ENGINE,
    apply_transaction_pooling,
    replica_database,
)
from jobs.tests.factories import JobTypeFactory
from wallet import services

pytestmark = pytest.mark.django_db


def _prepared_statements_on_server() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        return cursor.fetchone()[0]


def _spend_twice(user, fund) -> None:
    JobTypeFactory(code="pooled", price=5)
    fund(user, 100)
    for _ in range(2):
        services.spend(user=user, job_type="pooled")


def test_the_fast_path_prepares_its_statements_without_pooling(settings, user, fund):
    """The control: without the setting the spend prepares (so the next test can fail)."""
    settings.DATABASE_TRANSACTION_POOLING = False
    _spend_twice(user, fund)
    assert _prepared_statements_on_server() >= 2


@pytest.mark.django_db(transaction=True)  # to open a fresh session
def test_under_transaction_pooling_nothing_is_prepared_on_the_server(settings, user, fund):
    settings.DATABASE_TRANSACTION_POOLING = True
    connection.close()  # a fresh session: nothing prepared by an earlier test
    _spend_twice(user, fund)
    assert _prepared_statements_on_server() == 0


def test_pooling_switches_off_prepared_statements_and_held_cursors():
    database = apply_transaction_pooling({"ENGINE": "x", "OPTIONS": {}}, enabled=True)
    assert database["OPTIONS"]["prepare_threshold"] is None
    assert database["ENGINE"] == POOLED_ENGINE
    untouched = apply_transaction_pooling({"ENGINE": "x"}, enabled=False)
    assert untouched == {"ENGINE": "x"}


@pytest.mark.django_db(transaction=True)  # autocommit outside atomic(), as in production
def test_the_pooled_backend_declares_server_side_cursors_only_inside_a_transaction():
    """Outside a transaction Django would DECLARE … WITH HOLD (it outlives the transaction,
    so behind a pooler the next FETCH may reach another server connection)."""
    pooled = load_backend(POOLED_ENGINE).DatabaseWrapper(
        {**connection.settings_dict, "ENGINE": POOLED_ENGINE}, alias="pooled-check"
    )
    try:
        pooled.ensure_connection()
        assert pooled.get_autocommit()
        outside = pooled.chunked_cursor()
        assert not isinstance(outside.cursor, psycopg.ServerCursor)
        outside.close()
        pooled.set_autocommit(False)
        inside = pooled.chunked_cursor()
        assert isinstance(inside.cursor, psycopg.ServerCursor)  # constant memory in a transaction
        inside.close()
        pooled.rollback()
        pooled.set_autocommit(True)
    finally:
        pooled.close()
    # The control: Django's own backend, outside a transaction, holds a server cursor.
    plain = connection.chunked_cursor()
    try:
        assert isinstance(plain.cursor, psycopg.ServerCursor)
    finally:
        plain.close()


def test_the_replica_alias_follows_the_primary_and_the_pooling_switch():
    primary = {"CONN_MAX_AGE": 60}
    replica = replica_database({"NAME": "dw", "OPTIONS": {}}, like=primary, pooling=True)
    assert replica["CONN_MAX_AGE"] == 60
    assert replica["OPTIONS"]["connect_timeout"] > 0
    assert replica["OPTIONS"]["prepare_threshold"] is None
    assert replica["ENGINE"] == POOLED_ENGINE
    assert replica["TEST"] == {"MIRROR": "default"}
