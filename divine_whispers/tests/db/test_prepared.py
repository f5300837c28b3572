"""The statements every API request runs are prepared once per connection on a direct
connection, and never behind a transaction pooler (a named statement would be left on one
server connection)."""

from __future__ import annotations

import pytest
from django.db import connection

from divine_whispers.db.prepared import prepared_cursor
from wallet.services import issue_token

pytestmark = pytest.mark.django_db


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [row[0] for row in cursor.fetchall()]


def _balance_twice(client, user) -> None:
    _token, key = issue_token(user)
    for _ in range(2):
        answer = client.get("/api/v1/wallet/balance", HTTP_AUTHORIZATION=f"Token {key}")
        assert answer.status_code == 200


def test_the_key_lookup_and_the_balance_read_are_prepared(client, user):
    _balance_twice(client, user)
    statements = _prepared_statements()
    assert any("wallet_apitoken" in text and '"digest" = $1' in text for text in statements)
    assert any('FROM "wallet_wallet" LEFT OUTER JOIN' in text for text in statements)


@pytest.mark.django_db(transaction=True)
def test_behind_a_transaction_pooler_nothing_is_prepared(client, user, settings):
    settings.DATABASE_TRANSACTION_POOLING = True
    connection.close()  # a new session: no statement prepared by an earlier test
    try:
        _balance_twice(client, user)
        assert _prepared_statements() == []
    finally:
        connection.close()


def test_the_query_log_shows_the_statement():
    connection.force_debug_cursor = True
    try:
        with prepared_cursor(connection) as cursor:
            cursor.execute("SELECT %s::int + 1", [41])
            assert cursor.fetchone() == (42,)
    finally:
        connection.force_debug_cursor = False
    assert connection.queries[-1]["sql"] == "SELECT $1::int + 1"
