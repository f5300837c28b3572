"""The three operator commands also work on the embedded SQLite default (no triggers there).

Run in subprocesses: this test session itself is bound to PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

TAMPER = """
from django.db import connection
from wallet.models import Wallet
wallet = Wallet.objects.get(user__username="alice")
with connection.cursor() as cursor:
    # Only the ORM guards ledger rows on SQLite: raw SQL can edit one (documented caveat).
    cursor.execute("UPDATE wallet_transaction SET description = 'edited' WHERE id = 1")
    assert cursor.rowcount == 1
    cursor.execute("UPDATE wallet_wallet SET balance = balance + 5 WHERE id = %s", [wallet.pk])
print(wallet.pk)
"""


def test_commands_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["SQLITE_PATH"] = str(tmp_path / "db.sqlite3")
    env["DEBUG"] = "1"  # SQLite is the development database: refused with DEBUG off

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    for command in (["migrate", "--noinput"], ["seed_demo"]):
        assert manage(*command).returncode == 0
    clean = manage("verify_ledger", "--json", "--no-progress")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert json.loads(clean.stdout)["clean"] is True

    wallet_id = int(manage("shell", "-c", TAMPER).stdout.split()[-1])
    tampered = manage("verify_ledger", "--json", "--no-progress")
    assert tampered.returncode == 1
    assert [(f["check"], f["wallet_id"]) for f in json.loads(tampered.stdout)["findings"]] == [
        ("balance", wallet_id)
    ]
    assert manage("replay_ledger", "--apply", "--noinput", "--no-progress").returncode == 0
    assert manage("verify_ledger", "--no-progress").returncode == 0
    assert manage("cleanup_pending", "--older-than", "1h").returncode == 0
