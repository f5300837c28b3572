"""HTTP load generator: N concurrent asyncio clients POSTing /api/v1/wallet/spend.

Same protocol as bench.worker (READY, then the window start on stdin, JSON summary on
stdout), so bench.run drives it the same way. One process, separate from gunicorn's.
Each client has its own keep-alive connection; "spread" picks a random seeded user
(and that user's token) per request, "hot" always user 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter

import httpx

from bench.db import JOB_TYPE_CODE, token_for


async def client(
    index: int,
    args: argparse.Namespace,
    window: dict,
    go: asyncio.Event,
    latencies: list[float],
    errors: Counter,
) -> None:
    rng = random.Random(index + 1)
    tokens = {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=args.url, limits=limits, timeout=30) as http:
        await http.get("/healthz")  # connect before the window
        await go.wait()
        while True:
            user_id = 1 if args.hot else rng.randint(1, args.wallets)
            token = tokens.get(user_id) or tokens.setdefault(user_id, token_for(user_id))
            t0 = time.time()
            try:
                response = await http.post(
                    "/api/v1/wallet/spend",
                    json={"job_type": JOB_TYPE_CODE},
                    headers={"Authorization": f"Token {token}"},
                )
                failed = None if response.status_code == 201 else _describe(response)
            except httpx.HTTPError as exc:
                failed = f"{type(exc).__name__}"
            t1 = time.time()
            if t1 > window["end"]:
                return
            if t0 >= window["start"]:
                if failed:
                    errors[failed] += 1
                else:
                    latencies.append((t1 - t0) * 1000)


def _describe(response: httpx.Response) -> str:
    try:
        code = response.json()["error"]["code"]
    except Exception:
        code = response.text[:80]
    return f"HTTP {response.status_code} {code}"


async def main_async(args: argparse.Namespace) -> dict:
    latencies: list[float] = []
    errors: Counter = Counter()
    window: dict = {}
    go = asyncio.Event()
    tasks = [
        asyncio.create_task(client(i, args, window, go, latencies, errors))
        for i in range(args.threads)
    ]
    await asyncio.sleep(0.3)  # let every client connect
    print("READY", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    window["start"] = float(line)
    window["end"] = window["start"] + args.duration
    await asyncio.sleep(max(0.0, window["start"] - 0.5 - time.time()))
    go.set()
    await asyncio.gather(*tasks)
    return {
        "ops": len(latencies),
        "errors": dict(errors),
        "lat_ms": [round(x, 3) for x in latencies],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--threads", type=int, required=True, help="concurrent clients")
    parser.add_argument("--hot", action="store_true")
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--system", default="http")
    args = parser.parse_args()
    json.dump(asyncio.run(main_async(args)), sys.stdout)


if __name__ == "__main__":
    main()
