"""Spend throughput with lots: today's code (a checkout without lots) beside this one
with 1 and with 20 live lots per wallet, in one run on one machine.

    .venv/bin/python -m bench.lots --today /tmp/dw-main [--wallets 200] [--duration 4]

`--today` is a checkout of the code to compare with (e.g. `git worktree add --detach
/tmp/dw-main main`). For each variant a scratch database (dw_bench_lots_*) is created,
migrated by that variant's own code and seeded through its services (a deposit per
wallet; for "20 lots" also 19 expiring grants, the soonest of which covers every spend:
the common case, one lot covering the spend, on the fast path). Then `services.spend`
runs in closed loops on random wallets with 1 and with 8 threads, in `--rounds` rounds
whose variant order rotates (the machine is shared: medians, and every round printed).
Seeding and each measurement run in a child process (`--child`) importing only that
variant's code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("BENCH_SERVER_URL", "postgres://postgres@127.0.0.1:5432")
PRICE = 10
THREADS = (1, 8)


def _admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def _seed(args: argparse.Namespace) -> None:
    """Migrate and seed through the services of the code on sys.path."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from jobs.models import JobType
    from wallet import services

    call_command("migrate", verbosity=0)
    staff = get_user_model().objects.create(username="bench-staff", is_staff=True)
    JobType.objects.create(code="bench", name="Bench reading", price=PRICE, active=True)
    soon = timezone.now() + timedelta(days=30)
    for i in range(args.wallets):
        user = get_user_model().objects.create(username=f"b{i}")
        services.deposit(user=user, amount=10**6, reference_id=f"seed-{user.pk}", actor=staff)
        for extra in range(args.lots - 1):
            expires = soon + timedelta(days=extra)
            services.grant(user=user, amount=10**6, reason="bench", actor=staff, expires_at=expires)


def _spend_loop(ids: list[int], threads: int, duration: float) -> float:
    """`services.spend` on random wallets in `threads` closed loops; spends per second."""
    from django.db import connections

    from wallet import services

    counts = [0] * threads
    stop = time.monotonic() + duration

    def loop(index: int) -> None:
        rng = random.Random(index)
        try:
            while time.monotonic() < stop:
                services.spend(user=rng.choice(ids), job_type="bench")
                counts[index] += 1
        finally:
            connections.close_all()

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return round(sum(counts) / duration, 1)


def _child(args: argparse.Namespace) -> None:
    """Seed (`--seed`) or measure one round, with the code on sys.path."""
    import django

    django.setup()
    if args.seed:
        _seed(args)
        return
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(username__regex=r"^b[0-9]+$")  # not bench-staff
    ids = list(users.values_list("pk", flat=True))
    print(json.dumps({threads: _spend_loop(ids, threads, args.duration) for threads in THREADS}))


def _run_child(database: str, code: Path, *options: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": f"{SERVER}/{database}",
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "divine_whispers.settings",
        "PYTHONPATH": str(code),
        "WALLET_VELOCITY_LIMIT": "100000000",
        "LOG_LEVEL": "WARNING",
    }
    # This file, run as a script: its own folder first on sys.path, then only `code`.
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *options]
    try:
        done = subprocess.run(
            command, cwd=code, env=env, capture_output=True, text=True, check=True
        )
    except subprocess.CalledProcessError as failed:
        sys.exit(f"{database} failed:\n{failed.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def _measure(variants: list[tuple[str, Path, int]], args: argparse.Namespace) -> dict:
    for name, code, lots in variants:
        database = f"dw_bench_lots_{name}"
        _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        _admin(f"CREATE DATABASE {database}")
        _run_child(database, code, "--seed", f"--lots={lots}", f"--wallets={args.wallets}")
    rounds: dict[str, list[dict[int, float]]] = {name: [] for name, _, _ in variants}
    for round_no in range(args.rounds):  # the order rotates: no variant always goes first
        shift = round_no % len(variants)
        for name, code, _ in variants[shift:] + variants[:shift]:
            out = _run_child(f"dw_bench_lots_{name}", code, f"--duration={args.duration}")
            rounds[name].append({int(k): v for k, v in json.loads(out).items()})
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--today", type=Path, help="checkout of the code to compare with")
    parser.add_argument("--wallets", type=int, default=200)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lots", type=int, default=1)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--seed", action="store_true")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    variants = [("today", args.today, 1), ("lots_1", ROOT, 1), ("lots_20", ROOT, 20)]
    variants = [v for v in variants if v[1] is not None]
    try:
        rounds = _measure(variants, args)
    finally:
        for name, _, _ in variants:
            _admin(f"DROP DATABASE IF EXISTS dw_bench_lots_{name} WITH (FORCE)")
    table = {
        name: {t: statistics.median(r[t] for r in runs) for t in THREADS}
        for name, runs in rounds.items()
    }
    for name, figures in table.items():
        cells = "  ".join(f"{t} thr: {figures[t]:7.1f}/s" for t in THREADS)
        every = [[r[t] for t in THREADS] for r in rounds[name]]
        print(f"{name:8s} {cells}   rounds: {every}")
    if "today" in table:
        for name in ("lots_1", "lots_20"):
            ratios = "  ".join(
                f"{t} thr x{table[name][t] / table['today'][t]:.2f}" for t in THREADS
            )
            print(f"{name} / today (medians): {ratios}")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
