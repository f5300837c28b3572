"""Failover drill: a running cluster (deploy/cluster.sh) under steady mixed load through
HAProxy loses an app server, then its primary, and must lose nothing it acknowledged.

Timeline (seconds after the load starts):
  read routing  before the load: the standby replays with a 1 s delay
                (recovery_min_apply_delay); every user reads its own write at once
                (read-your-writes across the two app servers), and the replica serves
                reads; then with a delay over REPLICA_MAX_LAG_SECONDS it serves none
  t = 4         SIGKILL app server 1 (master and workers); HAProxy must mark it DOWN
  t = 10        app server 1 restarts and must come back UP (gunicorn boot: seconds)
  t = U + 4     (U: app server 1 back UP) `verify_ledger --json` on the primary: the
                checkpoint
  t = U + 5     SIGKILL the primary (postmaster and every backend); a monitor that polls
                it every 0.5 s declares it dead after 2 failures, promotes the standby
                and repoints PgBouncer (deploy/cluster.sh promote)
  t = U + 20    the load stops; retries in flight finish
Then, on the new primary: every acknowledged operation (201, or 200 replay) is in the
ledger exactly once with the amounts the client was told; no client key has two
effects; no ledger row of a drill user is unexplained; every spend has its job, every
transfer both legs; `verify_ledger` is clean and passes the pre-crash checkpoint; the
time from the kill to the first acknowledged write is measured.

The clients behave like the API guide (docs/api.md) asks clients to: every write carries an
Idempotency-Key, and a write whose outcome is unknown (connection error, 502/503/504,
409 request_in_progress) is retried with the same key until it gets an answer.

Prints a summary, writes artifacts/failover-drill/ (report, client log) and exits
non-zero on any finding.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
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


def cluster(*args: str) -> None:
    subprocess.run([CLUSTER_SH, *args], check=True, cwd=ROOT)


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
        from wallet.services.api_keys import issue_token as issue
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
    # (sent at, answered at, what was seen), in seconds since the load started
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
            return response.status, parsed
        finally:
            conn.close()

    def write(self, op: Op, path: str, token: str) -> None:
        """Send until the answer is definitive; same Idempotency-Key every time."""
        op.started = self.now()
        while True:
            sent = round(self.now(), 3)
            try:
                status, parsed = self.request("POST", path, token, op.body, op.key)
                seen = str(status)
                if status >= 400:
                    code = parsed.get("error", {}).get("code", "")
                    outcome = parsed.get("error", {}).get("details", {}).get("outcome")
                    seen = f"{status} {code}".strip() + (f" ({outcome})" if outcome else "")
            except (OSError, http.client.HTTPException) as exc:
                status, parsed, seen = None, {}, f"connection error: {type(exc).__name__}"
            op.attempts.append((sent, round(self.now(), 3), seen))
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
            op.status, op.result = self.request("GET", path, token, None, None)
            op.attempts.append((sent, round(self.now(), 3), str(op.status)))
        except (OSError, http.client.HTTPException) as exc:
            error = f"connection error: {type(exc).__name__}"
            op.attempts.append((sent, round(self.now(), 3), error))
        op.outcome, op.finished = "read", self.now()


class Load:
    """Client threads running a seeded mix: spends, transfers, history reads."""

    def __init__(self, base_url: str, users: list[dict], threads: int, rate: float, seed: int):
        self.users, self.threads, self.rate, self.seed = users, threads, rate, seed
        self.t0 = time.monotonic()
        self.client = Client(base_url, self.t0)
        self.ops: list[Op] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers: list[threading.Thread] = []

    def start(self) -> None:
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
            op = self._one(rng, user, f"drill-{self.seed}-{index}-{n}")
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


# --- phases -------------------------------------------------------------------------------


# A backend publishes its table statistics when idle, at most once a second, else after
# PostgreSQL's 10 s idle timeout: reading them later than that sees every scan.
STATS_SETTLE_SECONDS = 11


def replica_reads(standby_url: str) -> int:
    """Scans of the ledger table served by the standby (its own statistics), once every
    backend has published what it did so far."""
    time.sleep(STATS_SETTLE_SECONDS)
    rows = sql(
        standby_url,
        "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
        " WHERE relname = 'wallet_transaction'",
    )
    return int(rows[0][0]) if rows else 0


def set_apply_delay(standby_url: str, delay: str) -> None:
    sql(standby_url, f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'")
    sql(standby_url, "SELECT pg_reload_conf()")


class BackgroundWriter:
    """Steady spends by a set of users (rotating, under the velocity limit), so the
    standby's replay delay shows as lag."""

    def __init__(self, client: Client, users: list[dict], label: str, ops: list[Op]) -> None:
        self.client, self.users, self.label, self.ops = client, users, label, ops
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackgroundWriter:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(RETRY_DEADLINE_SECONDS + 5)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            user = self.users[n % len(self.users)]
            op = Op(f"drill-bg-{self.label}-{n}", user["id"], "spend", {"job_type": JOB_TYPE})
            self.client.write(op, "/api/v1/wallet/spend", user["token"])
            self.ops.append(op)
            n += 1
            time.sleep(0.2)


def read_routing_phase(
    base_url: str, users: list[dict], standby_url: str, pairs: int, ops: list[Op]
) -> dict:
    """With the standby replaying late while others write: a user who just wrote reads
    the write at once (through HAProxy, round robin: usually from the other app server),
    and a user who did not write reads from the replica only while its lag is within
    the bound (the standby's own table statistics say whether it served the read)."""
    client = Client(base_url, time.monotonic())
    writers, readers, quiet = users[: len(users) // 2], users[len(users) // 2 : -1], users[-1]
    report: dict = {}
    for delay, label in (("1s", "within_bound"), ("5s", "over_bound")):
        set_apply_delay(standby_url, delay)
        with BackgroundWriter(client, writers, label, ops):
            # Reading the statistics waits 11 s: the replay lag settles at about the delay.
            before = replica_reads(standby_url)
            read_errors = 0
            for _ in range(pairs):
                status, _ = client.request(
                    "GET", "/api/v1/wallet/transactions", quiet["token"], None, None
                )
                read_errors += status != 200
            quiet_scans = replica_reads(standby_url) - before
            missing = 0
            for i in range(pairs):
                user = readers[i % len(readers)]
                op = Op(f"drill-rw-{label}-{i}", user["id"], "spend", {"job_type": JOB_TYPE})
                client.write(op, "/api/v1/wallet/spend", user["token"])
                ops.append(op)
                if op.outcome != "acked":
                    continue
                status, history = client.request(
                    "GET", "/api/v1/wallet/transactions", user["token"], None, None
                )
                read_errors += status != 200
                ids = {row["id"] for row in history.get("results", [])}
                missing += op.result["transaction"]["id"] not in ids
        report[label] = {
            "apply_delay": delay,
            "quiet_reads": pairs,
            "quiet_reads_served_by_replica_scans": quiet_scans,
            "write_then_read_pairs": pairs,
            "own_write_missing": missing,
            "read_errors": read_errors,
        }
    set_apply_delay(standby_url, "0")
    return report


def primary_monitor(primary_port: int, killed_at: list[float], result: dict) -> None:
    """Declares the primary dead after 2 failed probes 0.5 s apart, then fails over."""
    failures = 0
    while failures < 2:
        try:
            psycopg.connect(
                f"postgres://postgres@127.0.0.1:{primary_port}/postgres", connect_timeout=1
            ).close()
            failures = 0
        except psycopg.OperationalError:
            failures += 1
        time.sleep(0.5)
    result["detected_after"] = time.monotonic() - killed_at[0]
    began = time.monotonic()
    cluster("promote")
    result["promote_seconds"] = time.monotonic() - began
    result["promoted_after"] = time.monotonic() - killed_at[0]


# --- verification -----------------------------------------------------------------------


def verify(ops: list[Op], users: list[dict], primary_url: str) -> tuple[dict, list[str]]:
    findings: list[str] = []
    user_ids = [u["id"] for u in users]
    rows = sql(
        primary_url,
        "SELECT t.id, t.wallet_id, w.user_id, t.type, t.amount, t.status, t.reference_id,"
        " t.transfer_id, (SELECT j.id FROM jobs_job j WHERE j.transaction_id = t.id)"
        " FROM wallet_transaction t JOIN wallet_wallet w"
        " ON w.id = t.wallet_id WHERE w.user_id = ANY(%s)",
        (user_ids,),
    )
    by_id = {row[0]: row for row in rows}
    by_key: dict[tuple[int, str, str], list[tuple]] = {}
    for row in rows:
        if row[6]:
            by_key.setdefault((row[2], row[3], row[6]), []).append(row)

    writes = [op for op in ops if op.kind in ("spend", "transfer")]
    sent_keys = {(op.user_id, op.key) for op in writes}
    acked = [op for op in writes if op.outcome == "acked"]
    for op in acked:
        if op.kind == "spend":
            txn = op.result.get("transaction", {})
            row = by_id.get(txn.get("id"))
            if row is None or row[4] != txn.get("amount") or row[6] != op.key:
                findings.append(f"LOST acknowledged spend {op.key}: {txn}")
            elif row[8] is None or row[8] != op.result.get("job", {}).get("id"):
                findings.append(f"spend {op.key} without its job")
        else:
            debit, credit = op.result.get("debit", {}), op.result.get("credit", {})
            debit_row, credit_row = by_id.get(debit.get("id")), by_id.get(credit.get("id"))
            if debit_row is None or credit_row is None:
                findings.append(f"LOST acknowledged transfer {op.key}: {debit} / {credit}")
            elif debit_row[7] != credit_row[7] or debit_row[4] + credit_row[4] != 0:
                findings.append(f"transfer {op.key} legs do not pair: {debit_row} {credit_row}")
    # Exactly one effect per key; no effect of a key the clients were told was refused.
    refused = {(op.user_id, op.key) for op in writes if op.outcome.startswith("rejected")}
    for (user_id, txn_type, reference), found in by_key.items():
        if reference.startswith("drill-seed-") or txn_type == "transfer_in":
            continue
        if len(found) != 1:
            findings.append(f"key {reference} has {len(found)} effects")
        if (user_id, reference) in refused:
            findings.append(f"key {reference} was refused to the client but has an effect")
        if (user_id, reference) not in sent_keys:
            findings.append(f"ledger row with a key no client sent: {reference}")
    for row in rows:
        if row[3] in ("spend", "transfer_out") and not row[6]:
            findings.append(f"unexplained {row[3]} row {row[0]} (no reference)")
    unknown = [op.key for op in writes if op.outcome == "unknown"]
    for op in writes:
        if op.outcome == "unknown":
            continue
        if any(seen.startswith("500") for _, _, seen in op.attempts):
            findings.append(f"{op.key} saw a 500: {op.attempts}")
    counts = {
        "writes_sent": len(writes),
        "acknowledged": len(acked),
        "acknowledged_after_retry": sum(len(op.attempts) > 1 for op in acked),
        "replayed_200": sum(op.status == 200 for op in acked),
        "refused": Counter(op.outcome for op in writes if op.outcome.startswith("rejected")),
        "outcome_unknown": len(unknown),
        "lost": sum("LOST" in f for f in findings),
        "ledger_rows_checked": len(rows),
    }
    if unknown:
        findings.append(f"{len(unknown)} writes never got an answer: {unknown[:5]}")
    return counts, findings


def timeline(ops: list[Op], origin: float, before: int, after: int) -> list[dict]:
    """Per half second from `before` seconds before `origin` to `after` seconds after it
    (times relative to `origin`): acknowledgements, and errors by what the client saw."""
    rows = []
    start, seconds = origin - before, before + after
    for step in range(seconds * 2):
        lo, hi = start + step / 2, start + (step + 1) / 2
        seen: Counter = Counter()
        for op in ops:
            for _, answered, what in op.attempts:
                if lo <= answered < hi:
                    seen["ok" if what.startswith("20") else what] += 1
        rows.append({"t": round(lo - origin, 1), "ok": seen.pop("ok", 0), "errors": dict(seen)})
    return rows


def verifier_self_check(users: list[dict], primary_url: str) -> bool:
    """The check must be able to fail: an acknowledgement for a transaction that is not
    in the ledger has to be reported as lost."""
    fake = Op("drill-self-check", users[0]["id"], "spend", {"job_type": JOB_TYPE})
    fake.outcome, fake.status = "acked", 201
    fake.result = {"transaction": {"id": -1, "amount": -PRICE}, "job": {"id": -1}}
    _, found = verify([fake], users, primary_url)
    return any(finding.startswith("LOST acknowledged spend drill-self-check") for finding in found)


def failure_window(ops: list[Op], start: float, end: float) -> dict:
    """What the clients saw between two moments: every attempt that was not a success."""
    seen: Counter = Counter()
    for op in ops:
        for _, answered, what in op.attempts:
            if start <= answered <= end and not what.startswith("20"):
                seen[what] += 1
    return dict(seen)


def first_ack_after(ops: list[Op], moment: float) -> float | None:
    """Seconds from `moment` until a write *sent* after it was acknowledged."""
    times = [
        answered
        for op in ops
        if op.kind in ("spend", "transfer")
        for sent, answered, what in op.attempts
        if sent > moment and what in ("200", "201")
    ]
    return min(times) - moment if times else None


# --- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=120)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=40.0, help="operations per second")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("DRILL_SEED", "7")))
    parser.add_argument("--rw-pairs", type=int, default=40)
    args = parser.parse_args()
    base_url = os.environ["CLUSTER_URL"]
    old_primary, new_primary = os.environ["CLUSTER_PRIMARY_URL"], os.environ["CLUSTER_STANDBY_URL"]
    findings: list[str] = []
    report: dict = {"seed": args.seed, "users": args.users, "threads": args.threads}

    log(f"setting up {args.users} users with {INITIAL_POINTS} points each")
    users = setup_users(args.users)

    log("read routing: standby replaying 1 s late, then 5 s late (bound: REPLICA_MAX_LAG_SECONDS)")
    setup_ops: list[Op] = []
    routing = read_routing_phase(base_url, users, new_primary, args.rw_pairs, setup_ops)
    report["read_routing"] = routing
    for label, figures in routing.items():
        if figures["own_write_missing"]:
            findings.append(
                f"read routing ({label}): {figures['own_write_missing']} own writes missing"
            )
        if figures["read_errors"]:
            findings.append(f"read routing ({label}): {figures['read_errors']} failed reads")
    if routing["within_bound"]["quiet_reads_served_by_replica_scans"] == 0:
        findings.append("read routing: the replica served no reads while within the lag bound")
    if routing["over_bound"]["quiet_reads_served_by_replica_scans"] != 0:
        findings.append("read routing: the replica served reads while over the lag bound")

    load = Load(base_url, users, args.threads, args.rate, args.seed)
    log(f"load: {args.threads} client threads, ~{args.rate:.0f} ops/s through {base_url}")
    load.start()
    marks: dict[str, float] = {}

    time.sleep(4)
    marks["app_killed"] = load.client.now()
    log("SIGKILL app server 1")
    cluster("app-kill", "1")
    down = wait_until(lambda: haproxy_server_status().get("app1") == "DOWN", 15)
    report["app_marked_down_after"] = down
    if down is None:
        findings.append("HAProxy never marked the killed app server DOWN")
    log(f"HAProxy marked app1 DOWN after {down}s")
    time.sleep(max(0.0, 10 - load.client.now()))
    marks["app_restarted"] = load.client.now()
    cluster("app-start", "1")
    up = wait_until(lambda: haproxy_server_status().get("app1") == "UP", 20)
    report["app_back_up_after"] = up
    if up is None:
        findings.append("the restarted app server never came back UP in HAProxy")

    app_up = load.client.now()
    time.sleep(4)
    checkpoint = STATE / "checkpoint-before-crash.json"
    taken = manage("verify_ledger", "--json", "--no-progress", database_url=old_primary)
    report["checkpoint"] = take_checkpoint(taken, checkpoint, findings)

    time.sleep(max(0.0, app_up + 5 - load.client.now()))
    log("SIGKILL the primary")
    cluster("primary-kill")
    # Taken once the kill has returned: an answer to a write sent after this moment
    # cannot come from the old primary.
    killed_at = [time.monotonic()]
    marks["primary_killed"] = load.client.now()
    failover: dict = {}
    primary_monitor(int(os.environ["CLUSTER_PRIMARY_PORT"]), killed_at, failover)
    log(f"standby promoted, PgBouncer repointed ({failover['promoted_after']:.2f}s after the kill)")

    time.sleep(max(0.0, app_up + 20 - load.client.now()))
    marks["load_stopped"] = load.client.now()
    log("stopping the load; waiting for retries in flight")
    load.finish()
    load_ops = list(load.ops)
    ops = setup_ops + load_ops

    recovered = first_ack_after(load_ops, marks["primary_killed"])
    report["failover"] = {
        **{k: round(v, 3) for k, v in failover.items()},
        "first_acknowledged_write_after_kill": recovered and round(recovered, 3),
        "clients_saw": failure_window(
            load_ops, marks["primary_killed"], marks["primary_killed"] + (recovered or 30)
        ),
        "timeline": timeline(load_ops, marks["primary_killed"], 1, 5),
    }
    report["app_kill"] = {
        "clients_saw": failure_window(
            load_ops, marks["app_killed"], marks["app_killed"] + (down or 5)
        ),
    }
    if recovered is None:
        findings.append("no write was acknowledged after the primary was killed")

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "client-log.json").write_text(json.dumps([asdict(op) for op in ops], default=str))
    log("verifying on the new primary")
    counts, more = verify(ops, users, new_primary)
    findings += more
    report["verifier_detects_a_lost_write"] = verifier_self_check(users, new_primary)
    if not report["verifier_detects_a_lost_write"]:
        findings.append("the verification did not notice a fabricated lost write")
    report["operations"] = counts
    report["reads"] = dict(Counter(str(op.status) for op in ops if op.kind == "history"))
    verified = manage("verify_ledger", "--no-progress", database_url=new_primary)
    report["verify_ledger"] = verified.returncode
    if verified.returncode != 0:
        findings.append(
            f"verify_ledger on the new primary: {verified.stdout[-500:]}{verified.stderr[-500:]}"
        )
    report["checkpoint_after_failover"] = check_checkpoint(checkpoint, new_primary, findings)
    report["jobs_left_pending"] = wait_for_jobs(new_primary, [u["id"] for u in users])
    if report["jobs_left_pending"].get("pending"):
        findings.append(f"jobs still pending 30 s after the load: {report['jobs_left_pending']}")

    report["findings"] = findings
    (OUT / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print_summary(report)
    log(f"report and the client log of every operation: {OUT}/")
    return 1 if findings else 0


def take_checkpoint(taken: subprocess.CompletedProcess, path: Path, findings: list[str]) -> str:
    if taken.returncode != 0:
        findings.append(
            f"verify_ledger before the crash: exit {taken.returncode} {taken.stderr[-300:]}"
        )
        return "failed"
    body = json.loads(taken.stdout)
    if "checkpoint" not in body:
        findings.append("verify_ledger --json has no checkpoint (ops' checkpoints not merged)")
        return "unsupported"
    path.write_text(json.dumps(body["checkpoint"]))
    return f"{len(body['checkpoint'].get('chains', body['checkpoint']))} chains"


def check_checkpoint(path: Path, primary_url: str, findings: list[str]) -> str:
    if not path.exists():
        return "no checkpoint"
    checked = manage(
        "verify_ledger", "--no-progress", "--checkpoint", str(path), database_url=primary_url
    )
    if checked.returncode != 0:
        findings.append(f"the pre-crash checkpoint fails after failover: {checked.stdout[-500:]}")
        return "FAILED"
    # The control: the same checkpoint with one chain's head rewritten must be refused.
    forged = json.loads(path.read_text())
    chain = next(iter(forged["chains"]))
    forged["chains"][chain]["head"] = "0" * len(forged["chains"][chain]["head"])
    forged_path = path.with_name("checkpoint-forged.json")
    forged_path.write_text(json.dumps(forged))
    refused = manage(
        "verify_ledger", "--no-progress", "--checkpoint", str(forged_path), database_url=primary_url
    )
    if refused.returncode != 1:
        findings.append(f"a forged checkpoint was not refused (exit {refused.returncode})")
        return "passes (but a forged one was not refused)"
    return "passes (a forged one is refused)"


def wait_for_jobs(primary_url: str, user_ids: list[int]) -> dict[str, int]:
    """The workers must drain the queue on the new primary. A job a worker was running
    when the primary died stays `running` until JOBS_RUNNING_TIMEOUT_SECONDS passes
    without a heartbeat; then the sweep fails and refunds it (counted, not a finding)."""

    def left() -> dict[str, int]:
        rows = sql(
            primary_url,
            "SELECT status, count(*) FROM jobs_job WHERE user_id = ANY(%s)"
            " AND status IN ('pending', 'running') GROUP BY status",
            (user_ids,),
        )
        return dict(rows)

    wait_until(lambda: not left().get("pending") and not left().get("running"), 30, step=1.0)
    return left()


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def print_summary(report: dict) -> None:
    ops, failover, app = report["operations"], report["failover"], report["app_kill"]
    routing = report["read_routing"]
    lines = [
        ("writes sent", ops["writes_sent"]),
        ("acknowledged (201, or 200 replay)", ops["acknowledged"]),
        ("  of which after a retry", ops["acknowledged_after_retry"]),
        ("  of which 200 replays", ops["replayed_200"]),
        ("refused (definitive 4xx)", dict(ops["refused"]) or 0),
        ("outcome never known", ops["outcome_unknown"]),
        ("LOST acknowledged operations", ops["lost"]),
        ("ledger rows checked", ops["ledger_rows_checked"]),
        ("app kill: marked DOWN after", _s(report["app_marked_down_after"])),
        ("app restart: back UP after", _s(report["app_back_up_after"])),
        ("app kill: clients saw", app["clients_saw"] or "nothing"),
        ("primary kill: detected after", _s(failover.get("detected_after"))),
        ("  promoted + PgBouncer repointed after", _s(failover.get("promoted_after"))),
        ("  first write acknowledged after", _s(failover["first_acknowledged_write_after_kill"])),
        ("  clients saw until then", failover["clients_saw"] or "nothing"),
        ("reads (history) by status", report["reads"]),
        (
            "read-your-writes misses (1 s / 5 s delay)",
            "{} / {}".format(
                routing["within_bound"]["own_write_missing"],
                routing["over_bound"]["own_write_missing"],
            ),
        ),
        (
            "replica scans for a quiet user (1 s / 5 s)",
            "{} / {}".format(
                routing["within_bound"]["quiet_reads_served_by_replica_scans"],
                routing["over_bound"]["quiet_reads_served_by_replica_scans"],
            ),
        ),
        ("verify_ledger on the new primary (exit)", report["verify_ledger"]),
        ("the check notices a fabricated lost write", report["verifier_detects_a_lost_write"]),
        (f"pre-crash checkpoint ({report['checkpoint']})", report["checkpoint_after_failover"]),
        ("jobs left pending / running", report["jobs_left_pending"] or 0),
    ]
    print("\n=== answers around the primary's kill (t = 0), per half second ===")
    for row in failover["timeline"]:
        print(f"t={row['t']:+5.1f} s  acknowledged {row['ok']:3d}  errors {row['errors'] or ''}")
    print("\n=== failover drill summary ===")
    for label, value in lines:
        print(f"{label:<46} {value}")
    print(f"findings: {len(report['findings'])}")
    for finding in report["findings"][:30]:
        print(f"  - {finding}")
    print("RESULT:", "FAIL" if report["findings"] else "PASS")


if __name__ == "__main__":
    sys.exit(main())
