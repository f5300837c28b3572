"""The failover drill's clients (deploy/failover_drill.py, deploy/cluster_load.py): drill
users with points and API keys, and client threads that behave like the API guide
(docs/api.md) asks clients to: every write carries an Idempotency-Key, and a write whose
outcome is unknown (connection error, 502/503/504, 409 request_in_progress) is retried
with the same key until it gets an answer. Every attempt is logged (sent, answered, what
was seen, which app server answered: HAProxy's X-Served-By header).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SH = str(ROOT / "deploy" / "cluster.sh")
STATE = Path(os.environ.get("CLUSTER_STATE", ROOT / ".cluster"))
OUT = ROOT / "artifacts" / "failover-drill"  # kept after `make cluster-stop`
JOB_TYPE, PRICE = "fortune", 5
INITIAL_POINTS = 5_000
RETRY_STATUSES = {502, 503, 504}
RETRY_DEADLINE_SECONDS = 60.0


# --- helpers ---------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


def cluster(*args: str) -> str:
    """deploy/cluster.sh ARGS; its standard output (e.g. the leader's name)."""
    done = subprocess.run([CLUSTER_SH, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return done.stdout.strip()


def manage(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def sql(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def haproxy_server_status() -> dict[str, str]:
    """Server name → UP/DOWN from HAProxy's CSV stats."""
    stats = urlsplit(os.environ["CLUSTER_STATS_URL"])
    conn = http.client.HTTPConnection(stats.hostname, stats.port, timeout=3)
    conn.request("GET", stats.path + ";csv")
    rows = conn.getresponse().read().decode().splitlines()
    header = rows[0].lstrip("# ").split(",")
    result = {}
    for row in rows[1:]:
        cells = dict(zip(header, row.split(","), strict=False))
        if cells.get("pxname") == "app" and cells.get("svname", "").startswith("app"):
            result[cells["svname"]] = cells["status"]
    return result


def wait_until(predicate, timeout: float, step: float = 0.2) -> float | None:
    """Seconds until predicate() held, or None after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except Exception:
            pass
        time.sleep(step)
    return None


# --- setup ----------------------------------------------------------------------------


def setup_users(count: int, prefix: str = "drill") -> list[dict]:
    """Drill users with points and API tokens, created through the services (Django)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "divine_whispers.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    logging.getLogger("divine_whispers").setLevel(logging.WARNING)  # no line per deposit
    from django.contrib.auth import get_user_model
    from django.db import connections

    from jobs.models import JobType
    from wallet import services

    user_model = get_user_model()
    JobType.objects.update_or_create(
        code=JOB_TYPE, defaults={"name": "Fortune", "price": PRICE, "active": True}
    )
    # The payment service account credits (no staff member may deposit).
    cashier, _ = user_model.objects.get_or_create(username="drill-payments", is_staff=False)
    users = []
    for i in range(count):
        user, _ = user_model.objects.get_or_create(username=f"{prefix}-{i:04d}")
        services.deposit(
            user=user, amount=INITIAL_POINTS, reference_id=f"{prefix}-seed-{i}", actor=cashier
        )
        users.append({"id": user.pk, "username": user.username, "token": issue_token(user)})
    connections.close_all()
    return users


def issue_token(user) -> str:
    """An API key, issued by the function behind `manage.py issue_token` (hashed,
    expiring keys); DRF's plain tokens on a version that predates them."""
    try:
        from wallet.tokens import issue_token as issue
    except ImportError:
        from rest_framework.authtoken.models import Token

        return Token.objects.get_or_create(user=user)[0].key
    return issue(user, name="failover-drill")[1]


# --- the clients ------------------------------------------------------------------------


@dataclass
class Op:
    key: str
    user_id: int
    kind: str  # spend | transfer | history | read_own
    body: dict = field(default_factory=dict)
    # (sent at, answered at, what was seen, app server), in seconds since the drill's t0
    attempts: list = field(default_factory=list)
    status: int | None = None
    outcome: str = "pending"  # acked | rejected:<code> | unknown | read
    result: dict = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0


class Client:
    """One HTTP request per connection (Connection: close), like a simple mobile client."""

    def __init__(self, base_url: str, t0: float) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.t0 = parts.hostname, parts.port, t0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def request(self, method: str, path: str, token: str, body: dict | None, key: str | None):
        """(status, parsed body, app server that answered — "" when HAProxy did)."""
        headers = {"Authorization": f"Token {token}", "Connection": "close"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        if key:
            headers["Idempotency-Key"] = key
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
            try:
                parsed = json.loads(data) if data else {}
            except ValueError:
                parsed = {"raw": data[:200].decode(errors="replace")}
            server = (response.getheader("X-Served-By") or "").removesuffix("-backup")
            return response.status, parsed, server
        finally:
            conn.close()

    def write(self, op: Op, path: str, token: str) -> None:
        """Send until the answer is definitive; same Idempotency-Key every time."""
        op.started = self.now()
        while True:
            sent, server = round(self.now(), 3), ""
            try:
                status, parsed, server = self.request("POST", path, token, op.body, op.key)
                seen = str(status)
                if status >= 400:
                    code = parsed.get("error", {}).get("code", "")
                    outcome = parsed.get("error", {}).get("details", {}).get("outcome")
                    seen = f"{status} {code}".strip() + (f" ({outcome})" if outcome else "")
            except (OSError, http.client.HTTPException) as exc:
                status, parsed, seen = None, {}, f"connection error: {type(exc).__name__}"
            op.attempts.append((sent, round(self.now(), 3), seen, server))
            retry = status is None or status in RETRY_STATUSES or status == 500
            retry = retry or (status == 409 and "request_in_progress" in seen)
            retry = retry or (status == 429 and "throttled" in seen)
            if retry and self.now() - op.started < RETRY_DEADLINE_SECONDS:
                time.sleep(0.25)
                continue
            op.status, op.finished = status, self.now()
            if status in (200, 201):
                op.outcome, op.result = "acked", parsed
            elif status is None or retry:
                op.outcome = "unknown"
            else:
                op.outcome = f"rejected:{parsed.get('error', {}).get('code', status)}"
            return

    def read(self, op: Op, path: str, token: str) -> None:
        op.started = sent = round(self.now(), 3)
        try:
            op.status, op.result, server = self.request("GET", path, token, None, None)
            op.attempts.append((sent, round(self.now(), 3), str(op.status), server))
        except (OSError, http.client.HTTPException) as exc:
            error = f"connection error: {type(exc).__name__}"
            op.attempts.append((sent, round(self.now(), 3), error, ""))
        op.outcome, op.finished = "read", self.now()


class Load:
    """Client threads running a seeded mix: spends, transfers, history reads. Keys are
    drill-<label>-<thread>-<n>; times are relative to t0 (the drill's, or the start)."""

    def __init__(
        self,
        base_url: str,
        users: list[dict],
        threads: int,
        rate: float,
        seed: int,
        label: str = "",
        t0: float | None = None,
    ):
        self.users, self.threads, self.rate, self.seed = users, threads, rate, seed
        self.label, self.fixed_t0 = label or str(seed), t0
        self.t0 = t0 if t0 is not None else time.monotonic()
        self.client = Client(base_url, self.t0)
        self.ops: list[Op] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers: list[threading.Thread] = []

    def start(self) -> None:
        if self.fixed_t0 is None:
            self.t0 = self.client.t0 = time.monotonic()
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self.workers.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.workers:
            thread.join(RETRY_DEADLINE_SECONDS + 35)

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        interval = self.threads / self.rate
        # Each thread owns a disjoint slice of the users: a user's operations are
        # sequential, as one device's would be.
        mine = self.users[index :: self.threads]
        n = 0
        while not self.stop.is_set():
            began = time.monotonic()
            user = rng.choice(mine)
            n += 1
            op = self._one(rng, user, f"drill-{self.label}-{index}-{n}")
            with self.lock:
                self.ops.append(op)
            time.sleep(max(0.0, interval - (time.monotonic() - began)))

    def _one(self, rng: random.Random, user: dict, key: str) -> Op:
        roll = rng.random()
        if roll < 0.5:
            op = Op(key, user["id"], "spend", {"job_type": JOB_TYPE})
            self.client.write(op, "/api/v1/wallet/spend", user["token"])
        elif roll < 0.8:
            recipient = rng.choice([u for u in self.users if u["id"] != user["id"]])
            amount = rng.randint(1, 20)
            op = Op(key, user["id"], "transfer", {"to_user_id": recipient["id"], "amount": amount})
            self.client.write(op, "/api/v1/wallet/transfer", user["token"])
        else:
            op = Op(key, user["id"], "history")
            self.client.read(op, "/api/v1/wallet/transactions", user["token"])
        return op
