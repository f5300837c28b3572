"""One load-generating process: N threads, each with its own connection, running one
system's spend in a closed loop for a fixed window, printing a JSON summary.

Run by bench.run (twice at once for "ours, 2 processes"): it prints READY once every
thread is connected, then reads the window's start time (epoch seconds) from stdin, so
several processes share one window. Only operations that start inside the window and
finish before it closes are counted.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import django

Op = Callable[[int], object]
# Operations run this long before the window opens (connections and caches warm up).
WARMUP_S = 0.5


def _floor_op(full: bool) -> Callable[[], Op]:
    def make() -> Op:
        import os

        import psycopg

        from bench.db import PRICE
        from bench.sql import floor_spend

        conn = psycopg.connect(os.environ["DATABASE_URL"], prepare_threshold=0)

        def op(user_id: int) -> None:
            floor_spend(conn, user_id, PRICE, full=full)

        op.close = conn.close  # type: ignore[attr-defined]
        return op

    return make


def _orm_op() -> Op:
    """The naive Django ORM spend of issue 7: select_for_update().get, F() update, create ×2."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from audit.models import AuditEvent
    from bench.db import PRICE
    from bench.sql import FAKE_HASH
    from wallet.models import Transaction, Wallet

    def op(user_id: int) -> None:
        with transaction.atomic():
            wallet = Wallet.objects.select_for_update().get(user_id=user_id)
            Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") - PRICE)
            now = timezone.now()
            row = Transaction.objects.create(
                wallet=wallet,
                user_id=user_id,
                type="spend",
                amount=-PRICE,
                balance_after=wallet.balance - PRICE,
                description="Reading",
                created_at=now,
            )
            AuditEvent.objects.create(
                chain=f"wallet:{wallet.pk}",
                action="wallet.spend",
                actor_id=user_id,
                wallet=wallet,
                transaction=row,
                amount=-PRICE,
                balance_before=wallet.balance,
                balance_after=wallet.balance - PRICE,
                created_at=now,
                key_id="k1",
                hash=FAKE_HASH,
            )

    return op


def _djwallet_op() -> Op:
    """dj-wallet's own withdraw (its wallet ids equal our user ids in the seed)."""
    from dj_wallet.models import Wallet as PeerWallet
    from dj_wallet.services.common import WalletService

    from bench.db import PRICE

    def op(user_id: int) -> None:
        WalletService.withdraw(PeerWallet(pk=user_id), PRICE)

    return op


def _users() -> dict:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.in_bulk()


def _ours_op(users: dict) -> Op:
    from bench.db import JOB_TYPE_CODE
    from wallet import services

    def op(user_id: int) -> None:
        services.spend(user=users[user_id], job_type=JOB_TYPE_CODE)

    return op


def _transfer_op(users: dict, wallets: int, hot: bool) -> Op:
    """Hot: users 1 and 2, both directions (alternating per call). Spread: the loop's
    random user sends 1 point to another random user."""
    from wallet import services

    flip = iter(range(10**12))
    rng = random.Random()

    def op(user_id: int) -> None:
        if hot:
            a, b = (users[1], users[2]) if next(flip) % 2 else (users[2], users[1])
        else:
            other = rng.randint(1, wallets - 1)
            a, b = users[user_id], users[other + (other >= user_id)]
        services.transfer(sender=a, recipient=b, amount=1)

    return op


def _no_audit() -> None:
    """Bench-only: spend without the audit chain (see bench/no_audit.py)."""
    from bench.no_audit import disable_spend_audit

    disable_spend_audit()


def make_op_factory(system: str, args: argparse.Namespace) -> Callable[[], Op]:
    """A factory called once per thread (each thread gets its own connection)."""
    if system in ("floor", "floor_min"):
        return _floor_op(full=system == "floor")
    django.setup()
    if system == "orm":
        return _orm_op
    if system == "djwallet":
        return _djwallet_op
    users = _users()
    if system == "ours_noaudit":
        _no_audit()
    if system in ("ours", "ours_noaudit"):
        return lambda: _ours_op(users)
    if system == "transfer":
        return lambda: _transfer_op(users, args.wallets, args.hot)
    raise SystemExit(f"unknown system {system}")


def run(args: argparse.Namespace) -> dict:
    """Build every thread's connection, say READY, read the window start from stdin, run."""
    factory = make_op_factory(args.system, args)
    uses_django = not args.system.startswith("floor")
    latencies: list[list[float]] = [[] for _ in range(args.threads)]
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    ready = threading.Barrier(args.threads + 1)
    go = threading.Event()
    window: dict[str, float] = {}

    def body(index: int) -> None:
        rng = random.Random(args.seed * 1000 + index)
        op = factory()
        mine = latencies[index]
        ready.wait()
        go.wait()
        start, end = window["start"], window["end"]
        time.sleep(max(0.0, start - WARMUP_S - time.time()))
        try:
            while True:
                user_id = 1 if args.hot else rng.randint(1, args.wallets)
                t0 = time.time()
                try:
                    op(user_id)
                    failed = None
                except Exception as exc:  # counted and reported, never hidden
                    failed = f"{type(exc).__name__}: {str(exc)[:120]}"
                t1 = time.time()
                if t1 > end:
                    break
                if t0 >= start:
                    if failed:
                        with lock:
                            errors[failed] += 1
                    else:
                        mine.append((t1 - t0) * 1000)
        finally:
            close = getattr(op, "close", None)
            if close:
                close()
            if uses_django:
                from django.db import connections

                connections.close_all()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    ready.wait()
    print("READY", flush=True)
    window["start"] = float(sys.stdin.readline())
    window["end"] = window["start"] + args.duration
    go.set()
    for thread in threads:
        thread.join()
    merged = [x for part in latencies for x in part]
    return {"ops": len(merged), "errors": dict(errors), "lat_ms": [round(x, 3) for x in merged]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--system", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--hot", action="store_true")
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    json.dump(run(args), sys.stdout)


if __name__ == "__main__":
    main()
