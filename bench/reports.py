"""Finance report and CSV export at 1M ledger rows (issue 13): timings and peak memory.

    .venv/bin/python -m bench.reports            # seed dw_rep_bench (if needed), measure, print
    .venv/bin/python -m bench.reports --reseed   # rebuild the scratch database first
    .venv/bin/python -m bench.reports --drop     # ... and drop it at the end

Works in a scratch database (`dw_rep_bench` on DATABASE_URL's server, else
postgres@127.0.0.1:5432), never the developer's or the tests'. The ledger is generated
by SQL in seconds (`INSERT … SELECT generate_series`), obeying every CHECK, unique
index, foreign key and the append-only triggers: 10,000 wallets × 91 slots over 400
days (deposits, spends, refunds of a spend, transfer pairs, adjustments up and down),
1,000,000 rows, each `balance_after` the wallet's running sum and each wallet's balance
its ledger sum.

Measured through the whole Django stack (middleware, DRF, admin) with the product's
default settings, as the README runs it: the report API over the last 30 and 366 days
(median of 5 after one warm-up), and the admin's streamed CSV exports of the whole
ledger (1M rows) and a filtered list (refunds), each in a fresh process so its peak
memory (VmHWM) is its own; Python's own allocations are traced too (tracemalloc peak).
Results: table on stdout, JSON in bench/results/reports.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg.types.numeric import Int8

from bench.db import ROOT, Server

DBNAME = "dw_rep_bench"
WALLETS = 10_000
SLOTS = 91  # per wallet, + a transfer_in for each of its 9 transfer_outs: 1,000,000 rows
SPAN_DAYS = 400
RESULTS = ROOT / "bench" / "results" / "reports.json"

SEED_SQL = """
INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT g, '!', false, 'rep' || g, '', '', 'rep' || g || '@example.com', false, true, now()
FROM generate_series(1, %(n)s) g;
SELECT setval(pg_get_serial_sequence('auth_user', 'id'), %(n)s);

-- Every ledger row, before ids and balances are final. Slot k of wallet w happens in
-- the k-th of SLOTS equal periods of the span, at an offset depending on w.
CREATE UNLOGGED TABLE bench_stage AS
WITH slots AS (
    SELECT w, k, (w %% %(n)s) + 1 AS partner,
           now() - make_interval(days => %(days)s::int)
               + make_interval(secs => (k - 1) * %(slot)s + (w * 7919) %% %(slot)s) AS at
    FROM generate_series(1, %(n)s) w, generate_series(1, %(r)s) k
)
SELECT (w - 1) * %(r)s + k AS id, w AS wallet_id,
       CASE WHEN k %% 10 = 1 THEN 'deposit'
            WHEN k %% 10 IN (2, 3, 4, 6, 7) THEN 'spend'
            WHEN k %% 10 = 5 THEN 'refund'
            WHEN k %% 10 = 8 THEN 'transfer_out'
            ELSE 'adjustment' END AS type,
       CASE WHEN k = 1 THEN 5000
            WHEN k %% 10 = 1 THEN 500
            WHEN k %% 10 IN (2, 3, 4, 6, 7) THEN -35
            WHEN k %% 10 = 5 THEN 10
            WHEN k %% 10 = 8 THEN -20
            WHEN k %% 10 = 9 THEN 15
            ELSE -5 END::bigint AS amount,
       CASE WHEN k %% 10 = 1 THEN 'bench-pay-' || w || '-' || k END AS reference_id,
       CASE WHEN k %% 10 IN (9, 0) THEN 'bench adjustment' ELSE '' END AS description,
       CASE WHEN k %% 10 = 5 THEN (w - 1) * %(r)s + k - 1 END AS related_id,
       CASE WHEN k %% 10 = 8 THEN md5('bench-transfer-' || w || '-' || k)::uuid END
           AS transfer_id,
       at AS created_at
FROM slots
UNION ALL
SELECT %(n)s * %(r)s + (w - 1) * %(r)s + k, partner, 'transfer_in', 20, NULL, '', NULL,
       md5('bench-transfer-' || w || '-' || k)::uuid, at
FROM slots WHERE k %% 10 = 8;

INSERT INTO wallet_wallet (id, user_id, balance, audit_head, created_at, updated_at)
SELECT wallet_id, wallet_id, sum(amount), '', min(created_at), max(created_at)
FROM bench_stage GROUP BY wallet_id;
SELECT setval(pg_get_serial_sequence('wallet_wallet', 'id'), %(n)s);

INSERT INTO wallet_transaction (id, wallet_id, user_id, type, amount, status, balance_after,
    reference_id, request_fingerprint, description, related_transaction_id, transfer_id,
    actor_id, created_at, updated_at)
SELECT id, wallet_id, wallet_id, type, amount, 'success',
       sum(amount) OVER (PARTITION BY wallet_id ORDER BY created_at, id),
       reference_id, '', description, related_id, transfer_id, NULL, created_at, created_at
FROM bench_stage;
SELECT setval(pg_get_serial_sequence('wallet_transaction', 'id'),
              (SELECT max(id) FROM wallet_transaction));
DROP TABLE bench_stage;
"""


def django_env(url: str) -> dict[str, str]:
    """The README's production configuration: DEBUG off, real secrets (random here)."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="divine_whispers.settings",
        DATABASE_URL=url,
        DEBUG="0",
        SECRET_KEY=os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        AUDIT_HMAC_KEY=os.environ.get("BENCH_AUDIT_HMAC_KEY") or secrets.token_urlsafe(32),
        ALLOWED_HOSTS="testserver,localhost",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def seeded(url: str) -> bool:
    try:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM wallet_transaction").fetchone()[0] > 0
    except psycopg.Error:
        return False


def seed(server: Server, url: str) -> None:
    server.drop(DBNAME)
    server.execute_admin(f'CREATE DATABASE "{DBNAME}"')
    print(f"migrating {DBNAME} …", flush=True)
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"],
        check=True,
        cwd=ROOT,
        env=django_env(url),
    )
    print(f"generating {WALLETS * (SLOTS + SLOTS // 10):,} ledger rows with SQL …", flush=True)
    started = time.perf_counter()
    slot_seconds = SPAN_DAYS * 86400 // SLOTS
    with psycopg.connect(url, autocommit=True) as conn:
        # As bigint: psycopg sends small Python ints as smallint, and n * r overflows it.
        params = {
            name: Int8(value)
            for name, value in {
                "n": WALLETS,
                "r": SLOTS,
                "days": SPAN_DAYS,
                "slot": slot_seconds,
            }.items()
        }
        for statement in filter(str.strip, SEED_SQL.split(";\n")):
            conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE")
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)


# --- Measurements (run inside Django) -------------------------------------------------


def _setup_django() -> None:
    import django

    django.setup()


def _staff(username: str, group: str):
    from django.contrib.auth.models import Group, User

    user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name=group))
    return user


def measure_report(runs: int) -> dict:
    """Median/min/max seconds of GET /api/v1/admin/reports/daily for 30 and 366 days."""
    from datetime import timedelta

    from django.db.models import Sum
    from django.test import Client
    from django.utils import timezone

    from wallet.models import Transaction, Wallet

    client = Client()
    client.force_login(_staff("bench-finance", "finance"))
    today = timezone.now().date()
    results = {}
    for days in (30, 366):
        params = {"from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}
        timings, body = [], None
        for run in range(runs + 1):
            started = time.perf_counter()
            response = client.get("/api/v1/admin/reports/daily", params)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.content[:500]
            body = response.json()
            if run:  # the first run warms caches up
                timings.append(elapsed)
        total_balance = Wallet.objects.aggregate(total=Sum("balance"))["total"]
        rows_in_range = body["totals"]["count"]
        results[f"report_{days}d"] = {
            "median_s": statistics.median(timings),
            "min_s": min(timings),
            "max_s": max(timings),
            "rows_in_range": rows_in_range,
            "closing_liability": body["totals"]["closing_liability"],
            "closing_equals_sum_of_balances": body["totals"]["closing_liability"] == total_balance,
        }
    results["ledger_rows"] = Transaction.objects.count()
    return results


def measure_export(query: str, traced: bool) -> dict:
    """One streamed export through the admin, consumed chunk by chunk like a server."""
    import tracemalloc

    from django.test import Client

    client = Client()
    client.force_login(_staff("bench-support", "support"))
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    response = client.get(f"/admin/wallet/transaction/export.csv?{query}")
    assert response.status_code == 200 and response.streaming, response.status_code
    lines = size = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    peak_traced = tracemalloc.get_traced_memory()[1] if traced else None
    return {
        "seconds": elapsed,
        "rows": lines - 1,
        "megabytes": size / 1e6,
        "peak_rss_mb": _vm_hwm_mb(),
        "tracemalloc_peak_mb": peak_traced / 1e6 if traced else None,
    }


def _vm_hwm_mb() -> float:
    """The process's peak resident memory (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _baseline_rss() -> dict:
    """A process that loaded Django and served one tiny export: the memory floor."""
    measure_export("q=rep1%40example.com", traced=False)
    return {"peak_rss_mb": _vm_hwm_mb()}


def child(kind: str, argument: str) -> None:
    """Runs one measurement in this (fresh) process and prints its JSON."""
    _setup_django()
    if kind == "report":
        result = measure_report(int(argument))
    elif kind == "baseline":
        result = _baseline_rss()
    else:
        result = measure_export(argument, traced=kind == "export-traced")
    print("RESULT " + json.dumps(result))


def run_child(url: str, kind: str, argument: str = "") -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.reports", "--child", kind, argument],
        cwd=ROOT,
        env=django_env(url),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reseed", action="store_true", help="rebuild the scratch database")
    parser.add_argument("--drop", action="store_true", help="drop the scratch database after")
    parser.add_argument("--runs", type=int, default=5, help="timed report requests per range")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    server = Server.from_env()
    url = server.url_for(DBNAME)
    if args.reseed or not seeded(url):
        seed(server, url)
    print("measuring the report API …", flush=True)
    results: dict = {"report": run_child(url, "report", str(args.runs))}
    print("measuring CSV exports (one fresh process each) …", flush=True)
    results["baseline"] = run_child(url, "baseline")
    results["export_all"] = run_child(url, "export", "")
    results["export_all_traced"] = run_child(url, "export-traced", "")
    results["export_refunds"] = run_child(url, "export", "type__exact=refund")
    results["export_refunds_traced"] = run_child(url, "export-traced", "type__exact=refund")
    results["postgresql"] = server.server_version()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    if args.drop:
        server.drop(DBNAME)


def print_table(results: dict) -> None:
    report = results["report"]
    print(f"\nLedger rows: {report['ledger_rows']:,} (PostgreSQL {results['postgresql']})\n")
    print(
        f"{'report API':<34}{'rows in range':>14}{'median s':>10}{'min s':>8}{'max s':>8}"
        f"{'  reconciles':>13}"
    )
    for days in (30, 366):
        r = report[f"report_{days}d"]
        print(
            f"{'GET …/reports/daily, ' + str(days) + ' days':<34}{r['rows_in_range']:>14,}"
            f"{r['median_s']:>10.3f}{r['min_s']:>8.3f}{r['max_s']:>8.3f}"
            f"{'  yes' if r['closing_equals_sum_of_balances'] else '  NO':>13}"
        )
    base = results["baseline"]["peak_rss_mb"]
    print(
        f"\n{'CSV export (admin)':<34}{'rows':>12}{'seconds':>9}{'MB':>8}{'rows/s':>10}"
        f"{'peak RSS MB':>13}{'Python peak MB':>16}"
    )
    for name, label in (("export_all", "whole ledger"), ("export_refunds", "filtered: refunds")):
        r, traced = results[name], results[f"{name}_traced"]
        print(
            f"{label:<34}{r['rows']:>12,}{r['seconds']:>9.1f}{r['megabytes']:>8.0f}"
            f"{r['rows'] / r['seconds']:>10,.0f}{r['peak_rss_mb']:>13.0f}"
            f"{traced['tracemalloc_peak_mb']:>16.1f}"
        )
    print(f"{'(process floor: Django + a 1-row export)':<73}{base:>13.0f}")


if __name__ == "__main__":
    main()
