"""Upgrade path: DRF's plaintext keys become hashed API keys and keep working.

Migrates the real database back to before the API key model, recreates DRF's
`authtoken_token` table as rest_framework.authtoken left it, stores a key there, runs the
migrations forward, and then uses the old key over HTTP.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.test import APIClient

from wallet.models import ApiToken
from wallet.tests.factories import UserFactory

BEFORE = [("wallet", "0004_finance_report")]
OLD_KEY = "3f1c2b9e8d7a6c5b4a39281706f5e4d3c2b1a098"  # 40 hex characters, DRF's format

DRF_TABLE = """
CREATE TABLE authtoken_token (
    key varchar(40) PRIMARY KEY,
    created timestamp with time zone NOT NULL,
    user_id integer NOT NULL UNIQUE REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED
)
"""


def _migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_an_existing_drf_key_keeps_working_but_is_stored_hashed(settings):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("wallet")
    user = UserFactory(username="legacy")
    _migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(DRF_TABLE)
            cursor.execute(
                "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, now(), %s)",
                [OLD_KEY, user.pk],
            )
    finally:
        _migrate(latest)

    response = APIClient().get("/api/v1/wallet/balance", HTTP_AUTHORIZATION=f"Token {OLD_KEY}")
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == user.pk
    assert "authtoken_token" not in connection.introspection.table_names()
    token = ApiToken.objects.get(user=user)
    assert OLD_KEY not in (token.digest, token.name)
    expected_expiry = timezone.now() + settings.API_TOKEN_TTL
    assert abs(token.expiry - expected_expiry) < timedelta(minutes=5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'authtoken'")
        assert cursor.fetchone() == (0,)
