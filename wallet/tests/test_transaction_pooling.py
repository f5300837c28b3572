"""DATABASE_TRANSACTION_POOLING: nothing outlives a transaction on the server.

Behind PgBouncer in transaction mode one Django connection's transactions run on
whichever server connection is free, so a named prepared statement or a WITH HOLD
cursor left on one is missing (or already exists) on the next. These tests look at the
server itself (`pg_prepared_statements` of the session) rather than at our flags; the
end-to-end run through a real PgBouncer is in test_pgbouncer.py.
"""

from __future__ import annotations

import pytest
from django.db import connection

from divine_whispers.db_settings import apply_transaction_pooling, replica_database
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


def test_pooling_switches_off_prepared_statements_and_server_side_cursors():
    database = apply_transaction_pooling({"ENGINE": "x", "OPTIONS": {}}, enabled=True)
    assert database["OPTIONS"]["prepare_threshold"] is None
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True
    untouched = apply_transaction_pooling({"ENGINE": "x"}, enabled=False)
    assert untouched == {"ENGINE": "x"}


def test_the_replica_alias_follows_the_primary_and_the_pooling_switch():
    primary = {"CONN_MAX_AGE": 60}
    replica = replica_database({"NAME": "dw", "OPTIONS": {}}, like=primary, pooling=True)
    assert replica["CONN_MAX_AGE"] == 60
    assert replica["OPTIONS"]["connect_timeout"] > 0
    assert replica["OPTIONS"]["prepare_threshold"] is None
    assert replica["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert replica["TEST"] == {"MIRROR": "default"}
