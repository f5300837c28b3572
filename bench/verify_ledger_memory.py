#!/usr/bin/env python
"""Benchmark (not a test): peak memory and time of `manage.py verify_ledger` on a big ledger.

    .venv/bin/python bench/verify_ledger_memory.py [--transactions 200000] [--wallets 2000]

1. creates a scratch database (default `dw_integrity_bench`, on the server of
   DATABASE_URL, else postgres@127.0.0.1:5432) and migrates it;
2. fills it quickly with N *consistent* ledger rows — deposits, spends (with their
   jobs), transfer pairs, partial refunds, adjustments — with valid balance_after
   chains and one HMAC-chained audit event per row, computed in Python with the
   project's own hashing and written with COPY (the append-only triggers only refuse
   UPDATE/DELETE/TRUNCATE, so bulk INSERTs are fine);
3. runs `manage.py verify_ledger` under `/usr/bin/time -v` and prints wall time and
   peak RSS (target: < 300 MB at 200,000 transactions), after checking it exits 0;
4. drops the scratch database (unless --keep).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BATCH = 10_000
SPEND_PRICE = 25


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


@dataclass
class WalletState:
    id: int
    balance: int = 0
    head: str = ""
    spends: deque = field(default_factory=lambda: deque(maxlen=4))  # [spend id, refundable]


class Generator:
    """Writes consistent ledger rows + audit events in batches through COPY."""

    def __init__(self, conn: psycopg.Connection, wallets: int, seed: int) -> None:
        from django.conf import settings

        from audit.hashing import hash_fields  # needs django.setup()

        self.hash_fields = hash_fields
        self.key_id = settings.AUDIT_HMAC_KEY_ID
        self.conn = conn
        self.rng = random.Random(seed)
        self.wallets = [WalletState(id=i) for i in range(1, wallets + 1)]
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)
        self.next_txn = 1
        self.next_event = 1
        self.next_job = 1
        self.txns: list[tuple] = []
        self.events: list[tuple] = []
        self.jobs: list[tuple] = []
        self.written = 0

    # -- rows ------------------------------------------------------------------------
    def _tick(self) -> datetime:
        self.clock += timedelta(milliseconds=3)
        return self.clock

    def _row(self, wallet: WalletState, kind: str, amount: int, now: datetime, **extra) -> int:
        txn_id = self.next_txn
        self.next_txn += 1
        before = wallet.balance
        wallet.balance += amount
        self.txns.append(
            (
                txn_id,
                wallet.id,
                wallet.id,  # user id == wallet id in this scratch database
                kind,
                amount,
                "success",
                wallet.balance,
                extra.get("reference_id"),
                "",
                extra.get("description", ""),
                extra.get("related"),
                extra.get("transfer_id"),
                None,
                now,
                now,
            )
        )
        self._event(wallet, f"wallet.{kind}", txn_id, amount, before, now, extra.get("meta", {}))
        return txn_id

    def _event(self, wallet, action, txn_id, amount, before, now, metadata) -> None:
        fields = {
            "chain": f"wallet:{wallet.id}",
            "action": action,
            "actor_id": None,
            "wallet_id": wallet.id,
            "transaction_id": txn_id,
            "amount": amount,
            "balance_before": before,
            "balance_after": wallet.balance,
            "request_id": "",
            "ip": None,
            "metadata": metadata,
            "created_at": now,
            "key_id": self.key_id,
            "prev_hash": wallet.head,
        }
        digest = self.hash_fields(fields, self.key_id)
        self.events.append(
            (
                self.next_event,
                fields["chain"],
                action,
                None,
                wallet.id,
                txn_id,
                amount,
                before,
                wallet.balance,
                "",
                None,
                Jsonb(metadata),
                now,
                self.key_id,
                wallet.head,
                digest,
            )
        )
        self.next_event += 1
        wallet.head = digest

    # -- operations ------------------------------------------------------------------
    def deposit(self, wallet: WalletState) -> int:
        ref = f"pay-{self.next_txn}"
        return self._row(
            wallet, "deposit", self.rng.randint(50, 500), self._tick(), reference_id=ref
        )

    def spend(self, wallet: WalletState) -> int:
        if wallet.balance < SPEND_PRICE:
            return self.deposit(wallet)
        now, job_id = self._tick(), self.next_job
        self.next_job += 1
        meta = {"job_id": job_id, "job_type": "fortune"}
        txn_id = self._row(wallet, "spend", -SPEND_PRICE, now, description="Fortune", meta=meta)
        self.jobs.append(
            (job_id, wallet.id, 1, txn_id, "completed", SPEND_PRICE, Jsonb({}), "", 0, now, now)
        )
        wallet.spends.append([txn_id, SPEND_PRICE])
        return 1

    def transfer(self, wallet: WalletState) -> int:
        target = self.rng.choice(self.wallets)
        amount = self.rng.randint(1, 40)
        if target is wallet or wallet.balance < amount:
            return self.deposit(wallet)
        now, pair = self._tick(), uuid.uuid4()
        self._row(wallet, "transfer_out", -amount, now, transfer_id=pair)
        self._row(target, "transfer_in", amount, now, transfer_id=pair)
        return 2

    def refund(self, wallet: WalletState) -> int:
        open_spends = [s for s in wallet.spends if s[1] > 0]
        if not open_spends:
            return self.spend(wallet)
        spend = open_spends[0]
        amount = min(spend[1], self.rng.randint(1, 10))
        spend[1] -= amount
        meta = {"reason": "bench refund"}
        self._row(
            wallet, "refund", amount, self._tick(), related=spend[0], description="bench", meta=meta
        )
        return 1

    def adjust(self, wallet: WalletState) -> int:
        amount = self.rng.choice([-2, 3, 5])
        if wallet.balance + amount < 0:
            amount = 3
        meta = {"reason": "bench"}
        return self._row(wallet, "adjustment", amount, self._tick(), description="bench", meta=meta)

    def run(self, transactions: int) -> None:
        operations = [self.deposit] * 25 + [self.spend] * 30 + [self.transfer] * 30
        operations += [self.refund] * 5 + [self.adjust] * 10
        self._seed_users_and_wallets()
        while self.next_txn <= transactions:
            self.rng.choice(operations)(self.rng.choice(self.wallets))
            if len(self.txns) >= BATCH:
                self._flush()
        self._flush()
        self._finish()

    # -- COPY ------------------------------------------------------------------------
    def _copy(self, table: str, columns: str, rows: list[tuple]) -> None:
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _seed_users_and_wallets(self) -> None:
        now = self.clock
        users = [
            (w.id, "!", False, f"bench{w.id}", "", "", "", False, True, now) for w in self.wallets
        ]
        self._copy(
            "auth_user",
            "id, password, is_superuser, username, first_name, last_name, email, is_staff, "
            "is_active, date_joined",
            users,
        )
        self._copy(
            "wallet_wallet",
            "id, user_id, balance, audit_head, created_at, updated_at",
            [(w.id, w.id, 0, "", now, now) for w in self.wallets],
        )
        self._copy(
            "jobs_jobtype",
            "id, code, name, description, price, active, created_at, updated_at",
            [(1, "fortune", "Fortune", "", SPEND_PRICE, True, now, now)],
        )

    def _flush(self) -> None:
        self._copy(
            "wallet_transaction",
            "id, wallet_id, user_id, type, amount, status, balance_after, reference_id, "
            "request_fingerprint, description, related_transaction_id, transfer_id, actor_id, "
            "created_at, updated_at",
            self.txns,
        )
        self._copy(
            "jobs_job",
            "id, user_id, job_type_id, transaction_id, status, points_used, input, error, "
            "attempts, created_at, updated_at",
            self.jobs,
        )
        self._copy(
            "audit_auditevent",
            "id, chain, action, actor_id, wallet_id, transaction_id, amount, balance_before, "
            "balance_after, request_id, ip, metadata, created_at, key_id, prev_hash, hash",
            self.events,
        )
        self.written += len(self.txns)
        self.txns, self.events, self.jobs = [], [], []
        self.conn.commit()
        print(f"  {self.written:>9,} transactions written", file=sys.stderr, end="\r")

    def _finish(self) -> None:
        """Wallet balances and chain heads; identity sequences past the explicit ids."""
        with self.conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE final (id bigint, balance bigint, head text)")
            with cur.copy("COPY final (id, balance, head) FROM STDIN") as copy:
                for w in self.wallets:
                    copy.write_row((w.id, w.balance, w.head))
            cur.execute(
                "UPDATE wallet_wallet w SET balance = f.balance, audit_head = f.head "
                "FROM final f WHERE f.id = w.id"
            )
            for table in ("auth_user", "wallet_wallet", "wallet_transaction", "audit_auditevent"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"
                )
            for table in ("jobs_job", "jobs_jobtype"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"
                )
        self.conn.commit()
        self.conn.autocommit = True
        self.conn.execute("VACUUM ANALYZE")
        print(file=sys.stderr)


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
        migrated = manage(env, "migrate", "--noinput")
        if migrated.returncode:
            print(migrated.stderr, file=sys.stderr)
            return 2
        started = time.monotonic()
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            generator = Generator(conn, args.wallets, args.seed)
            generator.run(args.transactions)
        fill = time.monotonic() - started
        rows, events = generator.next_txn - 1, generator.next_event - 1
        print(f"filled {rows:,} transactions, {events:,} audit events in {fill:.1f}s")

        baseline = time_v(manage(env, "shell", "-c", "pass", timed=True).stderr)
        run = manage(env, "verify_ledger", "--no-progress", timed=True)
        figures = time_v(run.stderr)
        print(run.stdout.strip())
        if run.returncode != 0:
            print(f"verify_ledger exited {run.returncode}:\n{run.stderr}", file=sys.stderr)
            return 1
        peak_mb = int(figures["peak_rss_kb"]) / 1024
        print(
            f"verify_ledger on {rows:,} transactions / {events:,} audit events: "
            f"wall {figures['wall']}, user {figures['user_s']}s, sys {figures['sys_s']}s, "
            f"peak RSS {peak_mb:.0f} MB "
            f"(Django baseline `manage.py shell -c pass`: "
            f"{int(baseline['peak_rss_kb']) / 1024:.0f} MB); target < 300 MB: "
            f"{'met' if peak_mb < 300 else 'MISSED'}"
        )
        return 0 if peak_mb < 300 else 1
    finally:
        if not args.keep:
            drop_database(args.database)
            print(f"scratch database {args.database} dropped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
