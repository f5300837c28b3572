"""Profile `wallet.services.spend` in one thread with pyinstrument (bench env only).

    .venv/bin/python -m bench.profile_spend [--spends 2000] [--hot] [--html out.html]

Seeds its own scratch database (dw_bench_profile), prints the time per spend and the
call tree, and drops the database afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

from bench import db

PROFILE_DB = "dw_bench_profile"


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from pyinstrument import Profiler

    from wallet import services

    users = get_user_model().objects.in_bulk()
    rng = random.Random(1)

    def one() -> None:
        user_id = 1 if args.hot else rng.randint(1, args.wallets)
        services.spend(user=users[user_id], job_type=db.JOB_TYPE_CODE)

    for _ in range(100):  # warm up connection and caches
        one()
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    profiler.start()
    for _ in range(args.spends):
        one()
    profiler.stop()
    elapsed = time.perf_counter() - started
    print(
        f"{args.spends} spends in {elapsed:.2f} s: {elapsed / args.spends * 1000:.3f} ms each"
        f" ({args.spends / elapsed:.0f}/s, one thread, {'hot' if args.hot else 'spread'})"
    )
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        with open(args.html, "w") as out:
            out.write(profiler.output_html())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spends", type=int, default=2000)
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--hot", action="store_true")
    parser.add_argument("--html")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    server = db.Server.from_env()
    db.seed_template(server, PROFILE_DB, args.wallets)
    try:
        command = [sys.executable, "-m", "bench.profile_spend", "--child", *sys.argv[1:]]
        subprocess.run(
            command, check=True, cwd=db.ROOT, env=db.django_env(server.url_for(PROFILE_DB))
        )
    finally:
        if not os.environ.get("BENCH_KEEP"):
            server.drop(PROFILE_DB)


if __name__ == "__main__":
    main()
