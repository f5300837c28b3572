"""The production drill: docs/operations/production.md's "Starting it", run as written.

Every shell block of the section runs literally, in order, in one bash (`set -euo
pipefail`), from the repository's folder — except the first, *your values*, which the
page says the drill replaces with this machine's: a local PostgreSQL (a fresh database
and two roles with random names), random secrets, a free port, a Redis database of its
own. The page's own blocks create the roles, migrate as the owner, bootstrap, start
gunicorn and a worker, and check /healthz, the API, /metrics and verify_ledger. Then the
drill's own checks (production_drill_checks.sh, in the same shell, after the page's
commands) proves the service
works end to end as the app role: a customer gets a deposit from the payment key the
bootstrap printed, buys a reading, and the page's worker completes it; verify_ledger
stays clean. Everything started is stopped, the database and roles are dropped.

`make production-drill` runs it (marker `stress`: about a minute).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from divine_whispers.tests.live_gunicorn import ROOT, free_port, server_url
from divine_whispers.tests.markdown_blocks import shell_blocks

pytestmark = pytest.mark.stress

EPILOGUE = (Path(__file__).parent / "production_drill_checks.sh").read_text()


def values_block(database: str, migrator: str, app: str, port: int) -> str:
    """This machine's values, in place of the page's first block."""
    secret = lambda: secrets.token_hex(32)  # noqa: E731
    admin = server_url("postgres")
    host = admin.split("@", 1)[1].rsplit("/", 1)[0]
    return "\n".join(
        [
            f"export PG_ADMIN_URL={admin}",
            f"export DB_NAME={database} DB_MIGRATOR={migrator} DB_APP={app}",
            f"export MIGRATE_DATABASE_URL=postgres://{migrator}@{host}/{database}",
            f"export DATABASE_URL=postgres://{app}@{host}/{database}",
            "export CACHE_URL=redis://127.0.0.1:6379/11",
            f"export SECRET_KEY={secret()} AUDIT_HMAC_KEY={secret()} METRICS_TOKEN={secret()}",
            f"export DW_ADMIN_PASSWORD={secret()} DW_ANN_PASSWORD={secret()}",
            f"export PUBLIC_HOST=wallet.example.com GUNICORN_BIND=127.0.0.1:{port}",
            "",
        ]
    )


def test_production_md_from_a_fresh_database_to_a_verified_service(tmp_path):
    blocks = shell_blocks("docs/operations/production.md", "## Starting it")
    assert blocks[0].startswith("export PG_ADMIN_URL="), "the first block is *your values*"
    suffix = secrets.token_hex(4)
    database, migrator, app = (
        f"dw_drill_{suffix}",
        f"dw_drill_mig_{suffix}",
        f"dw_drill_app_{suffix}",
    )
    script = "\n".join([values_block(database, migrator, app, free_port()), *blocks[1:], EPILOGUE])
    (tmp_path / "drill.sh").write_text(script)  # what ran, for a failure's reader
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PROMETHEUS_", "GUNICORN_", "MIGRATE_", "DJANGO_", "DATABASE_"))
        and k not in {"DEBUG", "LOG_FORMAT", "HTTPS"}
    }
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        shell = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    try:
        code = shell.wait(timeout=600)
        output, errors = out.read_text(), err.read_text()
        print(output)  # the record (pytest -s)
        assert code == 0, f"exit {code}\n{output[-3000:]}\n{errors[-5000:]}"
        for expected in [
            '"status": "ok", "database": "ok", "cache": "ok"',
            '["fortune","horoscope","tarot"]',
            "OK: the ledger and all audit chains are intact.",
            "drill: job 1 completed",
            '"balance":450',
            '{"clean":true,',
            f"drill: app role {app}, tables owned by {migrator}",
        ]:
            assert expected in output, f"{expected!r} not in:\n{output}\n{errors[-3000:]}"
        assert "No directory at" not in errors
        assert not (ROOT / "new-keys.txt").exists()
    finally:
        _stop_group(shell)
        with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{migrator}"')
            admin.execute(f'DROP ROLE IF EXISTS "{app}"')


def _stop_group(shell: subprocess.Popen) -> None:
    """The page's `&` processes (gunicorn, the worker) share the shell's process group."""
    try:
        os.killpg(shell.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(60):
        try:
            os.killpg(shell.pid, 0)
        except ProcessLookupError:
            return
        subprocess.run(["sleep", "0.5"], check=False)
    os.killpg(shell.pid, signal.SIGKILL)
