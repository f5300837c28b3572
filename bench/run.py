"""Entry point of `make bench` / `scripts/bench.sh [--quick]` (issue 7).

One run, one machine: a seeded template database is cloned fresh for every system, each
system runs spends at 1, 8 and 16 clients over 10,000 wallets ("spread") and on one
wallet ("hot"), and the ratios between systems are computed from this run only.
Results: a table on stdout, bench/results/latest.json, and PNG plots next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import db
from bench.sql import pgbench_script
from bench.systems import CLIENTS, EXTRA_LABELS, MODES, SYSTEM_LABELS

RESULTS = Path(__file__).resolve().parent / "results"
TEMPLATE = os.environ.get("BENCH_TEMPLATE_DB", "dw_bench_tpl")
RUN_DB = os.environ.get("BENCH_DB", "dw_bench_run")


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass
class Cell:
    system: str
    mode: str
    clients: int
    duration: float
    ops: int = 0
    errors: dict = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    note: str = ""

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        return {
            "system": self.system,
            "mode": self.mode,
            "clients": self.clients,
            "duration_s": self.duration,
            "ops": self.ops,
            "tps": round(self.ops / self.duration, 1) if self.duration else None,
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "p50_ms": _r(percentile(lat, 50)),
            "p95_ms": _r(percentile(lat, 95)),
            "p99_ms": _r(percentile(lat, 99)),
            "mean_ms": _r(statistics.fmean(lat)) if lat else None,
            "note": self.note,
        }


@dataclass
class SummaryCell:
    """A cell measured elsewhere (wrk) whose summary is already computed."""

    data: dict

    @property
    def system(self) -> str:
        return self.data["system"]

    @property
    def errors(self) -> dict:
        return self.data["error_kinds"]

    @property
    def note(self) -> str:
        return ""

    def summary(self) -> dict:
        return self.data


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.server = db.Server.from_env()
        self.template = TEMPLATE
        self.duration = args.duration or (2.0 if args.quick else 5.0)
        if args.verify_rows is None:
            args.verify_rows = "20000" if args.quick else "200000,1000000"
        self.wallets = args.wallets
        self.cells: list[Cell] = []
        self.extra: dict = {}
        self.step = 0
        self.total_steps = 0
        self.started = time.time()
        self.workdir = Path(tempfile.mkdtemp(prefix="dw-bench-"))
        self.cleanups: list[Callable[[], None]] = []  # servers to stop even on failure
        self.run_dbs: set[str] = set()
        self.current_db = f"{RUN_DB}_misc"

    # --- output --------------------------------------------------------------------------

    def log(self, message: str) -> None:
        elapsed = time.time() - self.started
        print(f"[{elapsed:6.1f}s] {message}", flush=True)

    def progress(self, label: str) -> None:
        self.step += 1
        self.log(f"({self.step}/{self.total_steps}) {label}")

    # --- databases -----------------------------------------------------------------------

    def fresh_run_db(self, system: str = "http") -> str:
        self.server.clone(TEMPLATE, self.db_for(system))
        return self.server.url_for(self.db_for(system))

    # --- runners -------------------------------------------------------------------------

    def run_workers(
        self,
        system: str,
        mode: str,
        clients: int,
        processes: int = 1,
        url: str = "",
        module: str = "bench.worker",
        extra: tuple[str, ...] = (),
        during: Callable[[float, float], None] | None = None,
    ) -> Cell:
        """`clients` threads split over `processes` worker processes, one shared window.

        `during(start, end)` runs in this process while the workers measure, with the
        window's epoch times (bench/cpu_split.py reads the CPU counters over it)."""
        cell = Cell(system, mode, clients, self.duration)
        worker_system = "ours" if system in ("ours_2proc", "ours_ref") else system
        url = url or self.server.url_for(self.current_db)
        per_process = [clients // processes + (i < clients % processes) for i in range(processes)]
        procs = []
        for index, threads in enumerate(per_process):
            command = [
                sys.executable,
                "-m",
                module,
                *extra,
                f"--system={worker_system}",
                f"--threads={threads}",
                f"--duration={self.duration}",
                f"--wallets={self.wallets}",
                f"--seed={index + 1}",
            ]
            if mode == "hot":
                command.append("--hot")
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=db.ROOT,
                    env=db.django_env(url),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:  # every process has connected all its threads
            line = proc.stdout.readline()
            if line.strip() != "READY":
                cell.errors["worker failed to start"] = 1
        start_at = time.time() + 0.6
        for proc in procs:
            proc.stdin.write(f"{start_at}\n")
            proc.stdin.flush()
        if during is not None:
            during(start_at, start_at + self.duration)
        for proc in procs:
            out, _ = proc.communicate(timeout=self.duration + 120)
            if proc.returncode != 0:
                cell.errors["worker crashed"] = cell.errors.get("worker crashed", 0) + 1
                continue
            part = json.loads(out)
            cell.ops += part["ops"]
            cell.latencies += part["lat_ms"]
            for kind, count in part["errors"].items():
                cell.errors[kind] = cell.errors.get(kind, 0) + count
        return cell

    def run_pgbench(self, mode: str, clients: int, *, full: bool = True) -> Cell:
        system = "pgbench" if full else "pgbench_min"
        cell = Cell(system, mode, clients, self.duration)
        installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
        pgbench = shutil.which("pgbench") or str(installed[-1] if installed else "pgbench")
        script = self.workdir / f"{system}-{mode}.sql"
        script.write_text(
            pgbench_script(hot=mode == "hot", wallets=self.wallets, price=db.PRICE, full=full)
        )
        logdir = self.workdir / f"log-{system}-{mode}-{clients}"
        logdir.mkdir()
        command = [
            pgbench,
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(min(clients, os.cpu_count() or 1)),
            "-T",
            str(max(1, round(self.duration))),
            "-f",
            str(script),
            "-l",
            f"--log-prefix={logdir}/pgbench",
        ]
        cell.duration = float(max(1, round(self.duration)))
        done = subprocess.run(
            command, env=self.server.libpq_env(self.current_db), capture_output=True, text=True
        )
        if done.returncode != 0:
            cell.errors[f"pgbench exit {done.returncode}"] = 1
            cell.note = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        for log in logdir.iterdir():
            for line in log.read_text().splitlines():
                fields_ = line.split()
                cell.latencies.append(int(fields_[2]) / 1000)
        cell.ops = len(cell.latencies)
        for line in done.stdout.splitlines():
            if line.startswith("number of failed transactions"):
                failed = int(line.split(":")[1].split()[0])
                if failed:
                    cell.errors["failed transactions"] = failed
        return cell

    # --- plan ----------------------------------------------------------------------------

    def record_summary(self, summary: dict) -> None:
        self.record(SummaryCell(summary))

    def tps_of(self, system: str, mode: str, clients: int) -> float | None:
        for cell in self.cells:
            s = cell.summary()
            if (s["system"], s["mode"], s["clients"]) == (system, mode, clients):
                return s["tps"]
        return None

    def record(self, cell: Cell | SummaryCell) -> None:
        self.cells.append(cell)
        s = cell.summary()
        errors = f", {s['errors']} errors" if s["errors"] else ""
        self.log(
            f"    → {s['tps']} tps, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms{errors}"
            + (f" ({cell.note})" if cell.note else "")
        )
        if cell.errors:
            for kind, count in list(cell.errors.items())[:3]:
                self.log(f"      {count} × {kind}")

    def db_for(self, system: str) -> str:
        """The system's own scratch database (cloned once, before the first cell)."""
        name = f"{RUN_DB}_{system}"
        self.run_dbs.add(name)
        return name

    def plan(self) -> list[tuple[str, Callable[[], None]]]:
        """Cells in column order: for each mode and client count, every system in turn.

        The machine is shared and its speed drifts over minutes; systems compared in a
        ratio therefore run seconds apart (same column), not minutes apart (same row).
        Each system keeps its own copy of the seeded database for the whole run.
        """
        steps: list[tuple[str, Callable[[], None]]] = []
        only = set(self.args.only.split(",")) if self.args.only else None

        def want(name: str) -> bool:
            return only is None or name in only

        # system -> (runner, client counts)
        grid: dict[str, tuple[Callable[[str, int], Cell], tuple[int, ...]]] = {}
        if want("pgbench"):
            grid["pgbench"] = (lambda m, n: self.run_pgbench(m, n), CLIENTS)
            grid["pgbench_min"] = (lambda m, n: self.run_pgbench(m, n, full=False), (8,))
        for system in ("floor", "orm", "djwallet", "ours"):
            if want(system):
                grid[system] = (lambda m, n, s=system: self.run_workers(s, m, n), CLIENTS)
        if want("floor"):
            grid["floor_min"] = (lambda m, n: self.run_workers("floor_min", m, n), (8,))
        if want("ours_2proc"):
            grid["ours_2proc"] = (
                lambda m, n: self.run_workers("ours_2proc", m, n, processes=2),
                (8, 16),
            )
        if want("audit"):
            grid["ours_noaudit"] = (lambda m, n: self.run_workers("ours_noaudit", m, n), (8,))
        if want("transfer"):
            grid["transfer"] = (lambda m, n: self.run_workers("transfer", m, n), (8, 16))
        if grid:

            def fresh() -> None:
                for system in grid:
                    self.server.clone(TEMPLATE, self.db_for(system))

            steps.append((f"fresh databases for {len(grid)} systems", fresh))
        for mode in [m for m in MODES if m in self.args.modes]:
            for n in [n for n in CLIENTS if n in self.args.clients]:
                for system, (runner, counts) in grid.items():
                    if n not in counts:
                        continue

                    def go(system=system, runner=runner, mode=mode, n=n) -> None:
                        self.current_db = self.db_for(system)
                        self.record(runner(mode, n))

                    label = SYSTEM_LABELS.get(system) or EXTRA_LABELS.get(system, system)
                    steps.append((f"{label} · {mode} · {n}", go))
        if want("http"):
            from bench import http_bench

            steps += http_bench.steps(self)
        if want("http_configs") and (only is not None or not self.args.quick):
            from bench import http_bench

            steps += http_bench.config_steps(self)
        if want("cpu"):
            from bench import profile_http

            steps += profile_http.steps(self)
        if want("history"):
            from bench import history

            steps += history.steps(self)
        if want("verify"):
            from bench import verify

            steps += verify.steps(self)
        return steps

    def run(self) -> dict:
        self.log(
            f"PostgreSQL {self.server.server_version()} · {os.cpu_count()} cores · "
            f"{self.duration:g} s per cell · {'quick' if self.args.quick else 'full'} run"
        )
        self.log(f"seeding template database {TEMPLATE} ({self.wallets} wallets)")
        db.seed_template(self.server, TEMPLATE, self.wallets)
        steps = self.plan()
        self.total_steps = len(steps)
        try:
            for label, action in steps:
                self.progress(label)
                action()
        finally:
            for cleanup in self.cleanups:
                cleanup()
            if not self.args.keep:
                for name in (*self.run_dbs, TEMPLATE, *self.extra.pop("_dbs", [])):
                    self.server.drop(name)
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.results()

    def results(self) -> dict:
        from bench.report import compute_ratios

        cells = [c.summary() for c in self.cells]
        load = os.getloadavg()
        return {
            "meta": {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "quick": self.args.quick,
                "duration_per_cell_s": self.duration,
                "wallets": self.wallets,
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "postgres": self.server.server_version(),
                "loadavg_at_end": [round(x, 2) for x in load],
                "wall_time_s": round(time.time() - self.started, 1),
            },
            "cells": cells,
            **{k: v for k, v in self.extra.items() if not k.startswith("_")},
            "ratios": compute_ratios(cells, self.extra),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short cells, smaller history")
    parser.add_argument("--duration", type=float, help="seconds per measured cell")
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--only", help="comma list: pgbench,floor,orm,djwallet,ours,...")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument(
        "--clients", type=lambda v: [int(x) for x in v.split(",")], default=list(CLIENTS)
    )
    parser.add_argument("--modes", type=lambda v: v.split(","), default=list(MODES))
    parser.add_argument(
        "--http-clients",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 4, 8, 16, 32],
        help="closed-loop HTTP connection counts (16 is the reference row)",
    )
    parser.add_argument(
        "--verify-rows",
        help="ledger sizes for verify_ledger (default 200000,1000000; quick: 20000)",
    )
    parser.add_argument(
        "--configs", help="http_configs: only configurations whose label contains one of these"
    )
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds of the HTTP ratio cells (quick 1, else 3)"
    )
    parser.add_argument(
        "--output",
        help="results file (default: bench/results/latest.json for a full run, which the "
        "documentation's Performance page renders; quick.json for a quick or partial run)",
    )
    args = parser.parse_args()

    db.ensure_secrets()
    bench = Bench(args)
    results = bench.run()
    full = not args.quick and not args.only
    output = Path(args.output or RESULTS / ("latest.json" if full else "quick.json"))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    from bench.api_targets import api_targets
    from bench.report import plot, print_table

    if any(c["system"] == "http" for c in results["cells"]):
        targets = RESULTS / "http_targets.json"
        targets.write_text(json.dumps(api_targets(results), indent=1) + "\n")
        bench.log(f"wrote the API targets to {targets} (docs/performance.md renders them)")
    print_table(results)
    plot(results, output.parent, prefix="" if output.stem == "latest" else f"{output.stem}-")
    bench.log(f"wrote {output} and plots in {output.parent}")
    if output.resolve() == (RESULTS / "latest.json").resolve():
        bench.log("docs/performance.md renders its tables from it (make docs)")


if __name__ == "__main__":
    main()
