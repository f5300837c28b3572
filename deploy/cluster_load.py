"""Capacity figures of a running cluster (`make cluster`; then `make cluster-load`).

Closed-loop clients (each sends its next request when the previous one returned) run the
drill's mix — 50 % spends, 30 % transfers, 20 % history reads, every write keyed —
through HAProxy at several client counts, with no fault. For each step: acknowledged
writes per second, latency, what was refused, and what each tier was doing: PgBouncer's
client and server connections, PostgreSQL backends on the primary, WAL written per
acknowledged write, the synchronous standby's replay lag. Prints a table and writes
artifacts/cluster-load/report.json. The service runs with its defaults (velocity limit
included): enough users are created that the limit is not what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections import Counter

from drill_client import ROOT, Load, log, setup_users, sql

OUT = ROOT / "artifacts" / "cluster-load"


def pgbouncer_pools() -> dict[str, int]:
    """Client/server connections of the primary's pool (SHOW POOLS on the admin console)."""
    output = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            os.environ["CLUSTER_PGBOUNCER_PORT"],
            "-U",
            "postgres",
            "-d",
            "pgbouncer",
            "-AF,",
            "-c",
            "SHOW POOLS",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    header = output[0].split(",")
    for line in output[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("database") == "divine_whispers":
            return {
                k: int(row[k])
                for k in ("cl_active", "cl_waiting", "sv_active", "sv_idle")
                if k in row
            }
    return {}


def primary_state(primary_url: str) -> tuple[int, int]:
    """(client backends on the primary, current WAL position in bytes)."""
    backends, lsn = sql(
        primary_url,
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')",
    )[0]
    return int(backends), int(lsn)


def replay_lag_ms(primary_url: str) -> float:
    rows = sql(
        primary_url,
        "SELECT coalesce(extract(epoch FROM replay_lag) * 1000, 0) FROM pg_stat_replication",
    )
    return float(rows[0][0]) if rows else float("nan")


def run_step(base_url: str, users: list[dict], threads: int, seconds: float, seed: int) -> dict:
    primary = os.environ["CLUSTER_PRIMARY_URL"]
    # Keys unique per run: a second run on the same cluster must not measure replays.
    load = Load(base_url, users, threads, rate=1e9, seed=seed, label=f"load{seed}-{time.time_ns()}")
    _, wal_before = primary_state(primary)
    load.start()
    samples: list[dict] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1.0)
        backends, _ = primary_state(primary)
        samples.append(
            {"pools": pgbouncer_pools(), "backends": backends, "lag_ms": replay_lag_ms(primary)}
        )
    window = load.client.now()
    load.finish()
    _, wal_after = primary_state(primary)
    ops = [op for op in load.ops if op.finished <= window]
    writes = [op for op in ops if op.kind in ("spend", "transfer")]
    acked = [op for op in writes if op.outcome == "acked"]
    latencies = sorted((op.finished - op.started) * 1000 for op in acked)
    reads = [op for op in ops if op.kind == "history" and op.status == 200]
    return {
        "client_threads": threads,
        "seconds": round(window, 1),
        "writes_acked_per_s": round(len(acked) / window, 1),
        "reads_per_s": round(len(reads) / window, 1),
        "write_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "write_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "refused": dict(Counter(op.outcome for op in writes if op.outcome != "acked")),
        "wal_bytes_per_write": round((wal_after - wal_before) / max(1, len(acked))),
        "pgbouncer_clients_max": max(s["pools"].get("cl_active", 0) for s in samples),
        "pgbouncer_servers_max": max(
            s["pools"].get("sv_active", 0) + s["pools"].get("sv_idle", 0) for s in samples
        ),
        "primary_backends_max": max(s["backends"] for s in samples),
        "standby_replay_lag_ms_max": round(max(s["lag_ms"] for s in samples), 1),
        "load_average": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--threads", default="4,8,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    base_url = os.environ["CLUSTER_URL"]
    log(f"setting up {args.users} users")
    users = setup_users(args.users, prefix="load")
    steps = []
    for threads in (int(t) for t in args.threads.split(",")):
        log(f"{threads} closed-loop clients for {args.seconds:.0f} s")
        steps.append(run_step(base_url, users, threads, args.seconds, args.seed + threads))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(steps, indent=2))
    columns = list(steps[0])
    print(" | ".join(columns))
    for step in steps:
        print(" | ".join(str(step[c]) for c in columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
