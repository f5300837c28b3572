"""The service runs as a database role that owns nothing (deploy/db_roles.sql).

A fresh database with its two roles, made by the script the operations page gives;
`migrate` as the owner (MIGRATE_DATABASE_URL), everything else as the app role
(DATABASE_URL): bootstrap, gunicorn with the production config serving deposit, balance,
spend and its replay, transfer; the job worker; verify_ledger. Then, connected as the app
role, the append-only ledger still holds: UPDATE, DELETE, TRUNCATE (even with the test
suite's escape-hatch setting), disabling the triggers and dropping a table all fail; and a
table a later migration adds (created by the owner) is readable and writable by the app.

Its own database and roles (random names), dropped at the end: the suite's test database
and its TRUNCATE-between-tests as the owner are untouched.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess

import psycopg
import pytest
from psycopg import errors

from divine_whispers.tests.live_gunicorn import (
    ROOT,
    gunicorn,
    manage,
    production_env,
    request,
    server_url,
)

ROLES_SQL = ROOT / "deploy" / "db_roles.sql"
EXAMPLE = ROOT / "deploy" / "bootstrap.example.toml"


@pytest.fixture
def roles():
    """(database, migrator, app) made by deploy/db_roles.sql; dropped afterwards."""
    if shutil.which("psql") is None:
        pytest.skip("psql (Debian's postgresql-client) is needed to run deploy/db_roles.sql")
    suffix = secrets.token_hex(4)
    names = (f"dw_roles_{suffix}", f"dw_migrate_{suffix}", f"dw_app_{suffix}")
    run_roles_sql(*names)
    try:
        yield names
    finally:
        with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{names[0]}" WITH (FORCE)')
            for role in names[1:]:
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def run_roles_sql(database: str, migrator: str, app: str) -> None:
    subprocess.run(
        ["psql", "-q", "-X", "-v", f"db={database}", "-v", f"migrator={migrator}",
         "-v", f"app={app}", "-f", str(ROLES_SQL), server_url("postgres")],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_service_works_as_an_app_role_that_cannot_touch_the_ledger(roles, tmp_path):
    database, migrator, app = roles
    run_roles_sql(database, migrator, app)  # idempotent: a second run is harmless
    env = production_env(
        server_url(database, app),
        MIGRATE_DATABASE_URL=server_url(database, migrator),
        DW_ADMIN_PASSWORD="admin-password-long-enough",
        DW_ANN_PASSWORD="ann-password-long-enough",
    )
    migrated = manage(env, "migrate", "--noinput")
    assert f"Migrating as '{migrator}'" in migrated.stdout
    pay_key = manage(env, "bootstrap", "--from", str(EXAMPLE)).stdout.split()[2]
    manage(env, "shell", "-c", "from django.contrib.auth.models import User; "
           "User.objects.create_user('alice'); User.objects.create_user('bob')")  # fmt: skip
    alice = manage(env, "issue_token", "alice").stdout.strip()
    with psycopg.connect(server_url(database, app)) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
        assert [row[0] for row in owners] == [migrator]
        ids = conn.execute("SELECT id FROM auth_user WHERE username IN ('alice', 'bob') ORDER BY 1")
        alice_id, bob_id = (row[0] for row in ids)

    with gunicorn(env, tmp_path) as server:
        api = f"{server.base}/api/v1"
        as_pay = {"Authorization": f"Token {pay_key}"}
        as_alice = {"Authorization": f"Token {alice}"}
        deposit = {"user_id": alice_id, "amount": 500, "reference_id": "psp-1"}
        assert request(f"{api}/wallet/deposit", headers=as_pay, body=deposit)[0] == 201
        spend = {"job_type": "fortune", "reference_id": "spend-1"}
        status, _headers, _body = request(f"{api}/wallet/spend", headers=as_alice, body=spend)
        assert status == 201
        status, headers, _body = request(f"{api}/wallet/spend", headers=as_alice, body=spend)
        assert (status, headers.get("Idempotent-Replayed")) == (200, "true")
        transfer = {"to_user_id": bob_id, "amount": 25, "reference_id": "gift-1"}
        assert request(f"{api}/wallet/transfer", headers=as_alice, body=transfer)[0] == 201
        status, _headers, body = request(f"{api}/wallet/balance", headers=as_alice)
        assert (status, b'"balance":425' in body) == (200, True), body

    manage(env, "run_jobs", "--once")
    verified = manage(env, "verify_ledger", "--json", "--no-progress")
    assert '"clean": true' in verified.stdout

    with psycopg.connect(server_url(database, app), autocommit=True) as conn:
        append_only = errors.IntegrityConstraintViolation  # the triggers' refusal
        refused = {
            "UPDATE wallet_transaction SET amount = amount + 1": append_only,
            "DELETE FROM wallet_transaction": append_only,
            "UPDATE audit_auditevent SET action = 'x'": append_only,
            "DELETE FROM audit_auditevent": append_only,
            "TRUNCATE wallet_transaction": errors.InsufficientPrivilege,
            "TRUNCATE audit_auditevent CASCADE": errors.InsufficientPrivilege,
            "ALTER TABLE wallet_transaction DISABLE TRIGGER ALL": errors.InsufficientPrivilege,
            "ALTER TABLE audit_auditevent DISABLE TRIGGER dw_append_only_rows": (
                errors.InsufficientPrivilege
            ),
            "DROP TRIGGER dw_append_only_rows ON wallet_transaction": errors.InsufficientPrivilege,
            "DROP TABLE wallet_wallet CASCADE": errors.InsufficientPrivilege,
            "CREATE TABLE sneaky (id int)": errors.InsufficientPrivilege,
        }
        conn.execute("SET divine_whispers.allow_truncate = 'on'")  # the suite's hatch: no use
        for statement, error in refused.items():
            with pytest.raises(error):
                conn.execute(statement)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM wallet_transaction),"
            " (SELECT count(*) FROM audit_auditevent)"
        ).fetchone()
        assert counts[0] == 4 and counts[1] > 0  # deposit, spend, 2 transfer legs
        jobs = conn.execute("SELECT status FROM jobs_job").fetchall()
        assert jobs == [("completed",)]  # the worker, as the app role, ran it

    # A table a later migration adds: created by the owner, usable by the app at once.
    with psycopg.connect(server_url(database, migrator), autocommit=True) as owner:
        owner.execute("CREATE TABLE later_table (id bigint GENERATED BY DEFAULT AS IDENTITY "
                      "PRIMARY KEY, note text)")  # fmt: skip
    with psycopg.connect(server_url(database, app), autocommit=True) as conn:
        conn.execute("INSERT INTO later_table (note) VALUES ('x')")
        conn.execute("UPDATE later_table SET note = 'y'")
        assert conn.execute("SELECT note FROM later_table").fetchall() == [("y",)]
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("TRUNCATE later_table")
