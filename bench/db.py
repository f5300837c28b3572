"""Scratch databases for the benchmark: a seeded template, cloned fresh for every system.

Every measured system starts from the same bytes (`CREATE DATABASE … TEMPLATE`), so no
system pays for the rows another one wrote, and nothing touches the developer's or the
test suite's databases. All of them are dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
# Seeded balance of every wallet: large enough that no benchmark run ever runs out.
SEED_BALANCE = 10**12
PRICE = 10
JOB_TYPE_CODE = "reading"


@dataclass(frozen=True)
class Server:
    """Where PostgreSQL runs (from DATABASE_URL, else the local default)."""

    url: str

    @classmethod
    def from_env(cls) -> Server:
        return cls(os.environ.get("DATABASE_URL") or DEFAULT_SERVER)

    def url_for(self, dbname: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{dbname}"))

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    def libpq_env(self, dbname: str) -> dict[str, str]:
        """PG* variables for pgbench/psql pointing at `dbname`."""
        parts = urlsplit(self.url)
        env = dict(os.environ)
        env.update(
            PGHOST=parts.hostname or "127.0.0.1",
            PGPORT=str(parts.port or 5432),
            PGUSER=parts.username or "postgres",
            PGDATABASE=dbname,
        )
        if parts.password:
            env["PGPASSWORD"] = parts.password
        return env

    def execute_admin(self, *statements: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def drop(self, dbname: str) -> None:
        self.execute_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    def clone(self, template: str, dbname: str) -> None:
        """A fresh copy of the seeded template (FILE_COPY: one checkpoint, no WAL replay)."""
        self.drop(dbname)
        self.execute_admin(f'CREATE DATABASE "{dbname}" TEMPLATE "{template}" STRATEGY FILE_COPY')

    def server_version(self) -> str:
        with psycopg.connect(self.admin_url) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]


# Explicit secrets for every benchmark process (the service refuses to start without
# them with DEBUG off), generated once per run so all processes agree on the audit key.
BENCH_SECRETS = {
    "SECRET_KEY": os.environ.get("SECRET_KEY") or f"bench-{secrets.token_urlsafe(48)}",
    "AUDIT_HMAC_KEY": os.environ.get("AUDIT_HMAC_KEY") or f"bench-{secrets.token_urlsafe(32)}",
}


def ensure_secrets() -> None:
    """Production refuses development secrets: the seed (audit chain) and every server
    this process starts share random ones, set once in its environment."""
    for name in ("SECRET_KEY", "AUDIT_HMAC_KEY"):
        os.environ.setdefault(name, secrets.token_urlsafe(48))


def django_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment of every benchmark process that loads Django."""
    env = dict(os.environ)
    env.update(BENCH_SECRETS)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=database_url,
        # Persistent connections, as in production behind gunicorn.
        CONN_MAX_AGE="600",
        # The velocity rule still runs on every spend (same query in the pgbench script),
        # but over a 1 s window with a limit no run reaches, so no spend is refused.
        WALLET_VELOCITY_WINDOW_SECONDS="1",
        WALLET_VELOCITY_LIMIT=str(10**9),
        API_THROTTLE_RATE="100000000/second",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def manage(database_url: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        check=True,
        cwd=ROOT,
        env=django_env(database_url),
        stdout=subprocess.DEVNULL,
    )


SEED_SQL = """
INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT g, '!', false, 'bench' || g, '', '', '', false, true, now()
FROM generate_series(1, %(n)s) g;
SELECT setval(pg_get_serial_sequence('auth_user', 'id'), %(n)s);

INSERT INTO jobs_jobtype (id, code, name, description, price, active, created_at, updated_at)
VALUES (1, %(code)s, 'Reading', '', %(price)s, true, now(), now());
SELECT setval(pg_get_serial_sequence('jobs_jobtype', 'id'), 1);

-- API keys as the service stores them: only knox's SHA-512 digest and 15-character
-- prefix of the key (md5 of a fixed text, see token_for), valid for 90 days.
INSERT INTO wallet_apitoken (digest, token_key, user_id, name, created, expiry)
SELECT encode(sha512(convert_to(md5('bench-token-' || g), 'UTF8')), 'hex'),
       left(md5('bench-token-' || g), 15), g, 'bench', now(), now() + interval '90 days'
FROM generate_series(1, %(n)s) g;

INSERT INTO dj_wallet_wallet (holder_type_id, holder_id, slug, uuid, balance, decimal_places,
                              is_frozen, frozen_reason, meta, created_at, updated_at)
SELECT (SELECT id FROM django_content_type WHERE app_label = 'auth' AND model = 'user'),
       g, 'default', gen_random_uuid(), %(balance)s, 8, false, '', '{}', now(), now()
FROM generate_series(1, %(n)s) g;
"""


# The peer endpoint (bench/peer) authenticates with DRF's own plaintext token table, which
# the product no longer has (it stores digests only, seeded above): created here, with
# the same keys (token_for).
TOKENS_SQL = """
CREATE TABLE IF NOT EXISTS authtoken_token (
    key varchar(40) PRIMARY KEY,
    created timestamptz NOT NULL,
    user_id integer NOT NULL UNIQUE REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED
);
INSERT INTO authtoken_token (key, user_id, created)
SELECT md5('bench-token-' || g), g, now() FROM generate_series(1, %(n)s) g;
"""


def token_for(user_id: int) -> str:
    """The API token the seed gives user `user_id` (md5 of a fixed text, like the SQL)."""
    import hashlib

    return hashlib.md5(f"bench-token-{user_id}".encode()).hexdigest()


def seed_template(server: Server, template: str, wallets: int) -> None:
    """Migrate a fresh template database and give `wallets` users a funded wallet.

    Users, tokens and the peer's wallets are plain SQL; our wallets are funded the way
    the ledger requires (a deposit row and its chained audit event per wallet), built
    by `bench.seed` with the product's own hashing so the ledger stays consistent.
    """
    server.drop(template)
    server.execute_admin(f'CREATE DATABASE "{template}"')
    url = server.url_for(template)
    manage(url, "migrate", "--noinput")
    with psycopg.connect(url, autocommit=True) as conn:
        # Client-side binding: several statements, one round trip.
        psycopg.ClientCursor(conn).execute(
            SEED_SQL,
            {"n": wallets, "code": JOB_TYPE_CODE, "price": PRICE, "balance": SEED_BALANCE},
        )
        psycopg.ClientCursor(conn).execute(TOKENS_SQL, {"n": wallets})
    subprocess.run(
        [sys.executable, "-m", "bench.seed", "--wallets", str(wallets)],
        check=True,
        cwd=ROOT,
        env=django_env(url),
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
