"""The embedded default (no DATABASE_URL → SQLite) runs a real spend/transfer flow.

Run in a subprocess: this test session itself is bound to PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

FLOW = """
from django.db import connection
from wallet import services
from wallet.models import Wallet
from wallet.tests.helpers import assert_ledger_consistent
from django.contrib.auth.models import User
assert connection.vendor == "sqlite", connection.vendor
assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
alice = User.objects.get(username="alice")
bob = User.objects.get(username="bob")
before = Wallet.objects.get(user=alice).balance
txn, job = services.spend(user=alice, job_type="tarot", reference_id="sqlite-spend")
services.transfer(sender=alice, recipient=bob, amount=10, reference_id="sqlite-transfer")
again = services.spend(user=alice, job_type="tarot", reference_id="sqlite-spend")
assert again.replayed
assert Wallet.objects.get(user=alice).balance == before - 120 - 10
assert_ledger_consistent()
print("sqlite-flow-ok")
"""


def run_on_seeded_sqlite(tmp_path, script: str) -> str:
    """Migrate and seed a fresh SQLite file (as `make run`), run `script` in
    `manage.py shell` against it; its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["SQLITE_PATH"] = str(tmp_path / "db.sqlite3")
    env["DEBUG"] = "1"  # SQLite is the development database: refused with DEBUG off
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "--noinput"], ["seed_demo"], ["shell", "-c", script]):
        done = subprocess.run(
            manage + command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
    return done.stdout


def test_sqlite_default_runs_seed_spend_and_transfer(tmp_path):
    assert "sqlite-flow-ok" in run_on_seeded_sqlite(tmp_path, FLOW)


HTTP_FLOW = """
from django.test import Client
from wallet.services.api_keys import issue_token
from django.contrib.auth.models import User
_, key = issue_token(User.objects.get(username="alice"))
client = Client(HTTP_AUTHORIZATION=f"Token {key}")
balance = client.get("/api/v1/wallet/balance")
assert balance.status_code == 200, balance.content
spent = client.post(
    "/api/v1/wallet/spend", {"job_type": "tarot"}, content_type="application/json",
    HTTP_IDEMPOTENCY_KEY="sqlite-http-spend",
)
assert spent.status_code == 201, spent.content
assert client.get("/api/v1/wallet/balance").json()["balance"] == balance.json()["balance"] - 120
print("sqlite-http-ok")
"""


def test_sqlite_default_serves_the_api_with_an_issued_key(tmp_path):
    """`make run`'s database answers API calls authenticated with a key from issue_token
    (a compiled lookup once raised a 500 there while the PostgreSQL suite stayed green)."""
    assert "sqlite-http-ok" in run_on_seeded_sqlite(tmp_path, HTTP_FLOW)
