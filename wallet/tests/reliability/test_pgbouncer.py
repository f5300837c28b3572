"""The service through a real PgBouncer in transaction mode (Debian's 1.18, which has no
prepared-statement support): 4 processes share 2 server connections, so consecutive
transactions of one process run on different server connections.

With DATABASE_TRANSACTION_POOLING every spend (its fast path included) and every
`.iterator()` read succeeds; without it the same run fails with prepared-statement
errors — the control that shows the first test can fail. scripts/test.sh installs
PgBouncer (as root, like Chromium); without the binary these tests are skipped, saying so.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from jobs.models import Job
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Wallet
from wallet.tests import pgbouncer_workers
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.reliability.invariants import assert_all_invariants

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" * os.path.exists("/usr/sbin/pgbouncer")
)
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not PGBOUNCER, reason="PgBouncer is not installed (apt-get install pgbouncer)"
    ),
]

PROCESSES = 4
SPENDS_EACH = 15
PRICE = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pgbouncer():
    """PgBouncer in transaction mode in front of the test database, 2 server connections."""
    settings_dict = connection.settings_dict
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="dw-pgbouncer-"))
    user = settings_dict["USER"] or "postgres"
    (folder / "users.txt").write_text(f'"{user}" "{settings_dict["PASSWORD"] or ""}"\n')
    auth = "md5" if settings_dict["PASSWORD"] else "trust"
    host, db_port = settings_dict["HOST"] or "127.0.0.1", settings_dict["PORT"] or 5432
    # The same server-session defaults as deploy/cluster.sh gives its PgBouncer.
    bounds = (
        "SET statement_timeout = 5000; SET lock_timeout = 3000; "
        "SET idle_in_transaction_session_timeout = 5000"
    )
    target = f"host={host} port={db_port} dbname={settings_dict['NAME']} connect_query='{bounds}'"
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{settings_dict["NAME"]} = {target}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = {auth}
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 50
server_reset_query =
ignore_startup_parameters = options
logfile = {folder}/pgbouncer.log
"""
    )
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(folder, "postgres")
        for name in ("users.txt", "pgbouncer.ini"):
            shutil.chown(folder / name, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(50):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"PgBouncer did not start: {process.stderr.read().decode()[-500:]}")
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _spend_through(port: int, pooling: bool) -> tuple[Counter, list]:
    JobTypeFactory(code="pooled", price=PRICE)
    owners = [UserFactory() for _ in range(PROCESSES)]
    for owner in owners:
        services.deposit(
            user=owner, amount=10_000, reference_id=f"seed-{owner.pk}", actor=payment_account()
        )
    db_name = connection.settings_dict["NAME"]
    connection.close()
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(
        PROCESSES, initializer=pgbouncer_workers.init, initargs=(db_name, port, pooling)
    ) as pool:
        reports = pool.map(
            pgbouncer_workers.spend_and_read, [(o.pk, "pooled", SPENDS_EACH) for o in owners]
        )
    totals: Counter = Counter()
    for report in reports:
        totals.update(report)
    return totals, owners


def test_with_transaction_pooling_everything_works_through_pgbouncer(pgbouncer):
    totals, owners = _spend_through(pgbouncer, pooling=True)
    assert totals == {"spent": PROCESSES * SPENDS_EACH}, totals
    for owner in owners:
        assert Wallet.objects.get(user=owner).balance == 10_000 - PRICE * SPENDS_EACH
        assert Job.objects.filter(user=owner).count() == SPENDS_EACH
    assert_all_invariants()


def test_without_it_prepared_statements_break_behind_pgbouncer(pgbouncer):
    """The control: the fast path's named prepared statements collide across clients."""
    totals, _ = _spend_through(pgbouncer, pooling=False)
    crashes = [outcome for outcome in totals if outcome.startswith("crash:")]
    assert crashes, totals
    assert any("prepared statement" in crash for crash in crashes), totals
    assert_all_invariants()  # a failed statement leaves nothing partial


def _wrapper_through(port: int, engine: str):
    """A Django connection of `engine` to the test database through PgBouncer on `port`."""
    from django.db.utils import load_backend

    settings_dict = {
        **connection.settings_dict,
        "ENGINE": engine,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OPTIONS": {**connection.settings_dict.get("OPTIONS", {}), "prepare_threshold": None},
    }
    return load_backend(engine).DatabaseWrapper(settings_dict, alias="through-pgbouncer")


def test_the_database_bounds_hold_behind_pgbouncer(pgbouncer, settings):
    """PgBouncer forwards no `options` startup parameter: the pooled engine sets each
    transaction's bounds with SET LOCAL, and PgBouncer's connect_query (as
    deploy/cluster.sh writes it) bounds what runs outside a transaction."""
    from divine_whispers.db.bounds import database_bounds
    from divine_whispers.db.config import POOLED_ENGINE

    settings.DATABASE_STATEMENT_TIMEOUT_SECONDS = 0.5
    settings.DATABASE_LOCK_TIMEOUT_SECONDS = 0.4
    pooled = _wrapper_through(pgbouncer, POOLED_ENGINE)
    try:
        with database_bounds("request"):
            with pooled.cursor() as cursor:  # autocommit: the server session's defaults
                cursor.execute("SHOW statement_timeout")
                assert cursor.fetchone()[0] == "5s"
            pooled.set_autocommit(False)
            with pooled.cursor() as cursor:
                cursor.execute("SHOW statement_timeout")
                assert cursor.fetchone()[0] == "500ms"
                cursor.execute("SHOW lock_timeout")
                assert cursor.fetchone()[0] == "400ms"
                started = time.monotonic()
                with pytest.raises(OperationalError, match="statement timeout"):
                    cursor.execute("SELECT pg_sleep(5)")
                assert time.monotonic() - started < 2
            pooled.rollback()
            pooled.set_autocommit(True)
    finally:
        pooled.close()
