"""/metrics is right across gunicorn's workers, started exactly as the README says.

`gunicorn -c gunicorn.conf.py` with 4 workers and only the settings production needs (no
PROMETHEUS_MULTIPROC_DIR: the config arranges it). A known number of spends is sent over
several connections at once, so several workers serve them; the scrape — answered by
whichever worker — must count every one of them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection

from divine_whispers.tests.metrics_helpers import samples, value
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.tests.factories import UserFactory, payment_account

ROOT = Path(__file__).resolve().parents[3]
GUNICORN = Path(sys.executable).with_name("gunicorn")
WORKERS = 4
USERS = 10
SPENDS_PER_USER = 10  # under the default velocity limit (30 a minute per user)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"postgres://{s['USER']}{password}@{host}:{port}/{s['NAME']}"


def _production_env(port: int, metrics_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")}
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        AUDIT_HMAC_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=_database_url(),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS=str(WORKERS),
        METRICS_TOKEN=metrics_token,
        LOG_FORMAT="json",
    )
    return env


def _request(url: str, *, headers: dict, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_until_up(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if _request(f"{base}/healthz", headers={})[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within 60 s:\n{log.read_text()[-3000:]}")


@pytest.mark.django_db(transaction=True)
def test_spends_served_by_four_workers_are_all_counted(tmp_path, client_for):
    job_type = JobTypeFactory(code="metrics-reading", price=3)
    tokens = []
    for index in range(USERS):
        user = UserFactory()
        services.deposit(user=user, amount=100, reference_id=f"mp-{index}", actor=payment_account())
        # The Authorization value the API expects, however tokens are issued and stored.
        tokens.append(client_for(user)._credentials["HTTP_AUTHORIZATION"])
    connection.close()  # the server's workers use the database from here on

    port, metrics_token = _free_port(), secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=_production_env(port, metrics_token),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(base, process, log)

        def spend(call: tuple[str, int]) -> int:
            token, n = call
            status, _ = _request(
                f"{base}/api/v1/wallet/spend",
                headers={"Authorization": token, "Idempotency-Key": f"mp-spend-{n}"},
                body={"job_type": job_type.code},
            )
            return status

        calls = [
            (token, f"{i}-{n}") for i, token in enumerate(tokens) for n in range(SPENDS_PER_USER)
        ]
        with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
            statuses = list(pool.map(spend, calls))
        assert statuses == [201] * len(calls)

        status, body = _request(
            f"{base}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}
        )
        assert status == 200
        text = body.decode()
        scraped = samples(text)
        spends = len(calls)
        print(f"\n{spends} spends served by {WORKERS} gunicorn workers; the scrape says:")
        for line in text.splitlines():
            if line.startswith(
                ("divine_whispers_operations_total", "divine_whispers_points_total")
            ):
                print("  " + line)
        assert (
            value(scraped, "divine_whispers_operations_total", operation="spend", outcome="ok")
            == spends
        )
        assert value(scraped, "divine_whispers_points_total", type="spend") == spends * 3
        spend_route = {"route": "api/v1/wallet/spend", "method": "POST", "status": "201"}
        assert value(scraped, "divine_whispers_http_requests_total", **spend_route) == spends
        assert value(scraped, "divine_whispers_jobs", status="pending") == spends

        # Several workers really did the counting: one counter file per process that counted.
        folder = re.search(r"prometheus multi-process metrics in (\S+)", log.read_text())
        assert folder, log.read_text()[-2000:]
        counting = {p.name for p in Path(folder.group(1)).glob("counter_*.db")}
        print(f"  counter files (one per worker that counted): {sorted(counting)}")
        assert len(counting) >= 2
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert not Path(folder.group(1)).exists()  # the temporary folder is removed at exit
    json_lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    spend_lines = [
        line for line in json_lines if json.loads(line).get("route") == "api/v1/wallet/spend"
    ]
    assert len(spend_lines) == len(calls)
    print(f"  one of gunicorn's {len(json_lines)} JSON log lines: {spend_lines[0]}")
