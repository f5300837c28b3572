"""verify_ledger time and peak memory, through the integrity benchmark on main
(bench/verify_ledger_memory.py: fills a scratch database with a consistent ledger and
HMAC-chained events, runs `manage.py verify_ledger` under /usr/bin/time -v)."""

from __future__ import annotations

import re
import subprocess
import sys

from bench import db

SCRIPT = db.ROOT / "bench" / "verify_ledger_memory.py"
LINE = re.compile(
    r"verify_ledger on ([\d,]+) transactions / ([\d,]+) audit events: wall (\S+), "
    r"user (\S+)s, sys (\S+)s, peak RSS (\d+) MB"
)
TRACEBACK = "Traceback (most recent call last):"


def _seconds(wall: str) -> float:
    parts = [float(p) for p in wall.split(":")]
    total = 0.0
    for part in parts:
        total = total * 60 + part
    return total


def _failure_reason(text: str) -> str:
    """Why the script failed: its last stderr line (`failed: …`, written last on purpose).
    From a traceback, its exception line instead: a database error's message goes on
    over several lines (DETAIL, CONTEXT), and only the first one says what happened."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[-1].startswith("failed: "):
        return lines[-1].removeprefix("failed: ")
    if TRACEBACK in lines:
        start = len(lines) - lines[::-1].index(TRACEBACK)  # after the last traceback's header
        exception = next((line for line in lines[start:] if not line.startswith(" ")), None)
        if exception:
            return exception
    return lines[-1].strip()


def steps(bench) -> list:
    command = db.ROOT / "wallet/management/commands/verify_ledger.py"
    if not SCRIPT.exists() or not command.exists():
        return []
    sizes = [int(x) for x in bench.args.verify_rows.split(",") if x]
    runs: list[dict] = []
    bench.extra["verify_ledger"] = {"tool": "bench/verify_ledger_memory.py", "runs": runs}

    def run(rows: int) -> None:
        done = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--transactions",
                str(rows),
                "--database",
                "dw_bench_verify",
            ],
            cwd=db.ROOT,
            env=db.django_env(bench.server.url),
            capture_output=True,
            text=True,
        )
        match = LINE.search(done.stdout)
        if not match:
            reason = _failure_reason(done.stderr) or _failure_reason(done.stdout) or "no output"
            runs.append(
                {
                    "rows": rows,
                    "exit": done.returncode,
                    "reason": reason,
                    "error": (done.stderr or done.stdout)[-400:],
                }
            )
            bench.log(f"    → failed (exit {done.returncode}): {reason}")
            return
        result = {
            "rows": rows,
            "events": int(match[2].replace(",", "")),
            "wall_s": round(_seconds(match[3]), 1),
            "cpu_s": round(float(match[4]) + float(match[5]), 1),
            "peak_mb": int(match[6]),
            "exit": done.returncode,
        }
        missed = ""
        if done.returncode:  # measured, but over the memory target
            result["reason"] = _failure_reason(done.stderr)
            missed = f" (exit {done.returncode}: {result['reason']})"
        runs.append(result)
        bench.log(
            f"    → {rows:,} rows: wall {result['wall_s']} s, CPU {result['cpu_s']} s, "
            f"peak RSS {result['peak_mb']} MB{missed}"
        )

    return [(f"verify_ledger at {n:,} transactions", lambda n=n: run(n)) for n in sizes]
