#!/usr/bin/env python
"""Benchmark (not a test): peak memory and time of `manage.py verify_ledger` on a big ledger.

    .venv/bin/python bench/verify_ledger_memory.py [--transactions 200000] [--wallets 2000]

1. creates a scratch database (default `dw_integrity_bench`, on the server of
   DATABASE_URL, else postgres@127.0.0.1:5432) and migrates it;
2. fills it quickly with N *consistent* ledger rows — deposits, promotional grants
   (most expiring) and the expiries of their lots, spends (with their jobs), transfer
   pairs, partial refunds, adjustments — with valid balance_after chains, one
   HMAC-chained audit event per row, and the lots and allocations the services write
   (bench/ledger_fill.py), computed in Python with the project's own hashing and written
   with COPY (the append-only triggers only refuse UPDATE/DELETE/TRUNCATE, so bulk
   INSERTs are fine);
3. runs `manage.py verify_ledger` under `/usr/bin/time -v` and prints wall time and
   peak RSS (target: < 300 MB at 200,000 transactions), after checking it exits 0;
4. drops the scratch database (unless --keep).

On failure the last line on stderr says why (`failed: …`): bench/verify.py records it.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PEAK_TARGET_MB = 300


def database_url(name: str) -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def recreate_database(name: str) -> None:
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(env: dict, *args: str, timed: bool = False) -> subprocess.CompletedProcess:
    command = [PYTHON, "manage.py", *args]
    if timed:
        command = ["/usr/bin/time", "-v", *command]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def time_v(stderr: str) -> dict[str, str]:
    wanted = {
        "Maximum resident set size (kbytes)": "peak_rss_kb",
        "Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall",
        "User time (seconds)": "user_s",
        "System time (seconds)": "sys_s",
    }
    found = {}
    for line in stderr.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key in wanted:
            found[wanted[key]] = value
    return found


def _own_stderr(stderr: str) -> list[str]:
    """The command's own stderr lines, without what /usr/bin/time -v appended."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip()
        and not line.startswith("\t")
        and not line.startswith("Command exited with non-zero status")
    ]


def verify_failure(run: subprocess.CompletedProcess) -> str:
    """One line: why verify_ledger failed (its first finding, or its last error line)."""
    lines = [line.strip() for line in run.stdout.splitlines()]
    found = next((line for line in lines if line.startswith("FOUND ")), None)
    first = next((line for line in lines if line.startswith("[")), None)
    if found and first:
        return f"verify_ledger exited {run.returncode}: {found} first: {first}"
    own = _own_stderr(run.stderr)
    return f"verify_ledger exited {run.returncode}: {own[-1] if own else 'no output'}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def measure(args: argparse.Namespace, env: dict) -> tuple[int, str]:
    """Migrate, fill, run verify_ledger: (exit status, why it failed or "")."""
    migrated = manage(env, "migrate", "--noinput")
    if migrated.returncode:
        print(migrated.stderr, file=sys.stderr)
        own = _own_stderr(migrated.stderr)
        return 2, f"migrate exited {migrated.returncode}: {own[-1] if own else 'no output'}"
    from bench.ledger_fill import Generator  # ROOT is on sys.path (main)

    started = time.monotonic()
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        generator = Generator(conn, args.wallets, args.seed)
        generator.run(args.transactions)
    fill = time.monotonic() - started
    rows, events = generator.next_txn - 1, generator.next_event - 1
    print(
        f"filled {rows:,} transactions, {events:,} audit events, "
        f"{generator.next_lot - 1:,} lots, {generator.allocation_count:,} allocations "
        f"in {fill:.1f}s"
    )

    baseline = time_v(manage(env, "shell", "-c", "pass", timed=True).stderr)
    run = manage(env, "verify_ledger", "--no-progress", timed=True)
    figures = time_v(run.stderr)
    print(run.stdout.strip())
    if run.returncode != 0:
        print(f"verify_ledger exited {run.returncode}:\n{run.stderr}", file=sys.stderr)
        return 1, verify_failure(run)
    peak_mb = int(figures["peak_rss_kb"]) / 1024
    print(
        f"verify_ledger on {rows:,} transactions / {events:,} audit events: "
        f"wall {figures['wall']}, user {figures['user_s']}s, sys {figures['sys_s']}s, "
        f"peak RSS {peak_mb:.0f} MB "
        f"(Django baseline `manage.py shell -c pass`: "
        f"{int(baseline['peak_rss_kb']) / 1024:.0f} MB); target < {PEAK_TARGET_MB} MB: "
        f"{'met' if peak_mb < PEAK_TARGET_MB else 'MISSED'}"
    )
    if peak_mb >= PEAK_TARGET_MB:
        return 1, f"peak RSS {peak_mb:.0f} MB is not under the {PEAK_TARGET_MB} MB target"
    return 0, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--wallets", type=int, default=2_000)
    parser.add_argument("--database", default="dw_integrity_bench")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.database):
        parser.error("--database: lowercase letters, digits and _ only")
    if args.wallets < 2:
        parser.error("--wallets: at least 2 (transfers need two wallets)")

    # Explicit secrets: with DEBUG off the service refuses to start without them.
    os.environ.setdefault("SECRET_KEY", f"bench-{secrets.token_urlsafe(48)}")
    os.environ.setdefault("AUDIT_HMAC_KEY", f"bench-{secrets.token_urlsafe(32)}")
    env = {**os.environ, "DATABASE_URL": database_url(args.database)}
    os.environ.update(DATABASE_URL=env["DATABASE_URL"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "divine_whispers.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    print(f"scratch database {args.database}: creating and migrating", file=sys.stderr)
    recreate_database(args.database)
    try:
        status, reason = measure(args, env)
    except Exception as exc:  # reported below, after the scratch database is gone
        traceback.print_exc()
        status, reason = 1, _one_line(exc)
    finally:
        if not args.keep:
            drop_database(args.database)
            print(f"scratch database {args.database} dropped", file=sys.stderr)
    if status:
        print(f"failed: {reason}", file=sys.stderr)  # the last line: bench/verify.py shows it
    return status


if __name__ == "__main__":
    sys.exit(main())
