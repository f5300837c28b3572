"""What the drill watches and probes besides the clients (deploy/failover_drill.py):
Patroni's view of the cluster, sampled from every member's REST API; a rogue client
writing straight to one PostgreSQL (a pooled connection no balancer can cut) to see
whether a frozen primary ever acknowledges a commit after it lost the leader key; and the
read routing phase (the replica, found through HAProxy's /replica check, replaying late).
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time

import psycopg
from drill_client import JOB_TYPE, RETRY_DEADLINE_SECONDS, Client, Op, cluster, sql, wait_until


def members() -> dict[str, tuple[int, int]]:
    """Member name → (PostgreSQL port, Patroni REST port), from .cluster/env."""
    found = {}
    for item in os.environ["CLUSTER_MEMBERS"].split(","):
        name, pg_port, rest_port = item.split(":")
        found[name] = (int(pg_port), int(rest_port))
    return found


def rest(port: int, path: str, timeout: float = 0.5) -> tuple[int | None, dict]:
    """(status, body) of Patroni's REST API; (None, {}) when it does not answer in time
    (a frozen member)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, (json.loads(body) if body else {})
    except (OSError, http.client.HTTPException, ValueError):
        return None, {}
    finally:
        conn.close()


class PatroniMonitor:
    """Every ~0.2 s, each member's GET /primary (200 only on the member holding the leader
    key, what HAProxy routes writes by) with its role and timeline. A sweep is
    (t, {member: (leader?, role, timeline)}), t relative to the drill's t0; a member that
    does not answer is (None, "no answer", None)."""

    def __init__(self, t0: float) -> None:
        self.t0, self.members = t0, members()
        self.sweeps: list[tuple[float, dict]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PatroniMonitor:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(5)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _run(self) -> None:
        while not self.stop.is_set():
            sweep = {}
            for name, (_, rest_port) in self.members.items():
                status, body = rest(rest_port, "/primary")
                if status is None:
                    sweep[name] = (None, "no answer", None)
                else:
                    sweep[name] = (status == 200, body.get("role"), body.get("timeline"))
            self.sweeps.append((round(self.now(), 3), sweep))
            time.sleep(0.2)

    def leaders(self, sweep: dict) -> list[str]:
        return [name for name, (leader, _, _) in sweep.items() if leader]

    def wait(self, condition, after: float, timeout: float) -> tuple[float, dict] | None:
        """The first sweep taken after `after` whose members satisfy condition(sweep)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            sweeps = self.sweeps[seen:]
            seen += len(sweeps)
            for t, sweep in sweeps:
                if t > after and condition(sweep):
                    return t, sweep
            time.sleep(0.1)
        return None

    def wait_leader(self, after: float, timeout: float, not_: str | None = None):
        """(time, name) of the first sweep after `after` with a leader other than not_."""
        found = self.wait(
            lambda s: any(n != not_ for n in self.leaders(s)), after=after, timeout=timeout
        )
        return (found[0], self.leaders(found[1])[0]) if found else (None, None)

    def wait_no_leader(self, after: float, timeout: float) -> float | None:
        found = self.wait(lambda s: not self.leaders(s), after=after, timeout=timeout)
        return found[0] if found else None

    def wait_replica(self, name: str, after: float, timeout: float) -> float | None:
        """Time the member answers as a streaming replica of the current leader's timeline."""

        def rejoined(sweep: dict) -> bool:
            leader = self.leaders(sweep)
            mine = sweep.get(name, (None, None, None))
            return bool(leader) and mine[1] == "replica" and mine[2] == sweep[leader[0]][2]

        found = self.wait(rejoined, after=after, timeout=timeout)
        return found[0] if found else None

    def wait_settled(self, after: float, timeout: float) -> tuple[float | None, str | None]:
        """(time, leader) of the first sweep after `after` with one leader and every other
        member a replica on its timeline."""

        def settled(sweep: dict) -> bool:
            leaders = self.leaders(sweep)
            if len(leaders) != 1:
                return False
            timeline = sweep[leaders[0]][2]
            others = [v for n, v in sweep.items() if n != leaders[0]]
            return all(v[1] == "replica" and v[2] == timeline for v in others)

        found = self.wait(settled, after=after, timeout=timeout)
        return (found[0], self.leaders(found[1])[0]) if found else (None, None)

    def two_leaders(self) -> list[tuple[float, list[str]]]:
        return [(t, self.leaders(s)) for t, s in self.sweeps if len(self.leaders(s)) > 1]

    def leader_changes(self, start: float, end: float) -> list[tuple[float, str | None]]:
        """(time, leader or None) each time the leader seen by the sweeps changed."""
        changes, last = [], "unset"
        for t, sweep in self.sweeps:
            if start <= t <= end:
                current = (self.leaders(sweep) or [None])[0]
                if current != last:
                    changes.append((t, current))
                    last = current
        return changes[1:] if changes else []


def is_sync_standby(name: str) -> bool:
    return rest(members()[name][1], "/sync")[0] == 200


class FenceProbe:
    """A client with its own connection straight to one member's PostgreSQL (no
    PgBouncer, no HAProxy to cut it), committing one row at a time to drill_fence.
    attempts: (sent, answered, "ok" | error, row id), times relative to t0."""

    def __init__(self, pg_port: int, database: str, t0: float) -> None:
        self.url = f"postgres://postgres@127.0.0.1:{pg_port}/{database}"
        self.t0, self.attempts = t0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def create_table(leader_url: str) -> None:
        sql(leader_url, "CREATE TABLE IF NOT EXISTS drill_fence (id bigserial PRIMARY KEY)")

    def start(self) -> FenceProbe:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        conn = None
        while not self.stop.is_set():
            sent, row = time.monotonic() - self.t0, None
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=2)
                row = conn.execute("INSERT INTO drill_fence DEFAULT VALUES RETURNING id")
                row, seen = row.fetchone()[0], "ok"
            except psycopg.Error as exc:
                seen = type(exc).__name__
                conn = None
            self.attempts.append((sent, time.monotonic() - self.t0, seen, row))
            time.sleep(0.1 if seen == "ok" else 0.5)

    def acked(self, sent_after: float = float("-inf"), sent_before: float = float("inf")) -> list:
        return [a for a in self.attempts if a[2] == "ok" and sent_after < a[0] < sent_before]

    def lost_on(self, leader_url: str) -> list[int]:
        """Acknowledged rows the leader does not have: a commit acknowledged by a primary
        whose history was then rewound away (split brain)."""
        ids = [a[3] for a in self.acked()]
        found = {
            r[0] for r in sql(leader_url, "SELECT id FROM drill_fence WHERE id = ANY(%s)", (ids,))
        }
        return [i for i in ids if i not in found]


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
    """Through Patroni (it owns the recovery parameters), then wait until it applied it."""
    cluster("replica-delay", cluster("replica"), delay)
    wanted = "0" if delay in ("0", "0s") else delay
    wait_until(lambda: sql(standby_url, "SHOW recovery_min_apply_delay")[0][0] == wanted, 20)


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
                status, _, _ = client.request(
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
                status, history, _ = client.request(
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
