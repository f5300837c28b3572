"""Database settings shared by the primary and the replica alias (settings.py uses them).

Kept out of settings.py so the tests can check exactly what the pooling switch changes.
"""

from __future__ import annotations

from typing import Any

POOLED_ENGINE = "divine_whispers.db.pooled_postgresql"
# Every PostgreSQL alias: Django's engine with each database wait bounded (bounds.py).
BOUNDED_ENGINE = "divine_whispers.db.bounded_postgresql"

# A replica that does not answer quickly is skipped (reads fall back to the primary);
# waiting the operating system's connect timeout would stall every read-only request.
REPLICA_CONNECT_TIMEOUT_SECONDS = 2


def apply_transaction_pooling(database: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """Make a PostgreSQL alias safe behind a transaction-mode pooler (PgBouncer).

    - `prepare_threshold=None`: psycopg never creates a named prepared statement (it
      would live on one server connection and be missing, or clash, on the next);
    - the `divine_whispers.db.pooled_postgresql` engine: `.iterator()` outside a
      transaction fetches client-side instead of declaring a `WITH HOLD` cursor that
      outlives its transaction (inside one it keeps its server-side cursor);
    - the spend fast path reads `settings.DATABASE_TRANSACTION_POOLING` and binds its
      statements unnamed, as do the compiled hot queries (divine_whispers/db/prepared.py).
    Session state is not used otherwise: the time zone is a parameter PgBouncer tracks
    per client, and `SET` runs only as `SET TRANSACTION`/`SET LOCAL` inside a transaction.
    """
    if enabled:
        database.setdefault("OPTIONS", {})["prepare_threshold"] = None
        database["ENGINE"] = POOLED_ENGINE
    return database


def apply_bounds(database: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL aliases use the bounded engine (connect, lock, statement and idle
    transaction bounds: divine_whispers/db/bounds.py); other engines are left alone."""
    if database.get("ENGINE", "").endswith("postgresql"):
        database["ENGINE"] = BOUNDED_ENGINE
    return database


def replica_database(
    config: dict[str, Any], *, like: dict[str, Any], pooling: bool
) -> dict[str, Any]:
    """The `replica` alias: connections kept like the primary's (`like`), a short connect
    timeout, and in tests a mirror of the default database (no second test database)."""
    config["CONN_MAX_AGE"] = like.get("CONN_MAX_AGE", 0)
    config.setdefault("OPTIONS", {}).setdefault("connect_timeout", REPLICA_CONNECT_TIMEOUT_SECONDS)
    config["CONN_HEALTH_CHECKS"] = True
    config["TEST"] = {"MIRROR": "default"}
    return apply_transaction_pooling(apply_bounds(config), pooling)


def use_owner_role(database: dict[str, Any], owner: dict[str, Any]) -> None:
    """Point a closed connection's settings at the schema owner's credentials.

    `manage.py migrate` runs as the role that owns the tables (MIGRATE_DATABASE_URL)
    while the service runs as a role that does not (DATABASE_URL): only the credentials
    and address change, never the database, so a typo cannot migrate another one.
    """
    if owner["NAME"] != database["NAME"]:
        raise ValueError(
            f"MIGRATE_DATABASE_URL names database {owner['NAME']!r}, "
            f"DATABASE_URL {database['NAME']!r}: they must be the same database"
        )
    for key in ("USER", "PASSWORD", "HOST", "PORT"):
        database[key] = owner.get(key, "")
