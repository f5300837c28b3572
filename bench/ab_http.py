"""Before/after of the HTTP layer in one run: two source trees served side by side.

    git worktree add /tmp/before <commit>
    .venv/bin/python -m bench.ab_http --before /tmp/before [--rounds 4] [--seconds 3]

Each tree gets its own production gunicorn (`gunicorn -c gunicorn.conf.py`, the README's
environment, bench/http_bench.py) on its own copy of one seeded database; the rounds
interleave them (spend at 16 connections, balance at 16, before then after, each round),
so what is compared ran seconds apart on a machine whose speed drifts. Then each tree's
per-request CPU without a profiler (bench/profile_http.py, mode cpu) for a spend and a
balance read. Prints a table; the JSON goes to bench/results/ab_http.json (or --output).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from bench import db, http_bench, profile_http

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, type=Path, help="the other source tree")
    parser.add_argument("--after", type=Path, default=db.ROOT)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--cpu-seconds", type=int, default=6)
    parser.add_argument("--no-cpu", dest="cpu", action="store_false", help="throughput only")
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=RESULTS / "ab_http.json")
    parser.add_argument(
        "--after-server",
        choices=["gunicorn", "granian"],
        default="gunicorn",
        help="serve the after side with granian (WSGI) instead: no CPU phase then",
    )
    parser.add_argument("--label", default="", help="what differs, for the JSON")
    parser.add_argument(
        "--after-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a documented knob set for the after side only (same tree: a setting's A/B)",
    )
    args = parser.parse_args()
    db.ensure_secrets()
    server = db.Server.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="dw-ab-"))
    template = os.environ.get("BENCH_TEMPLATE_DB", "dw_bench_ab_tpl")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    knobs = {"before": {}, "after": dict(item.split("=", 1) for item in args.after_env)}
    names = {side: f"{template}_{side}" for side in trees}
    db.seed_template(server, template, args.wallets)
    servers: dict[str, http_bench.Gunicorn] = {}
    runs: dict[str, dict[str, list[dict]]] = {side: {} for side in trees}
    try:
        for side, root in trees.items():
            server.clone(template, names[side])
            granian = side == "after" and args.after_server == "granian"
            kind = http_bench.Granian if granian else http_bench.Gunicorn
            extra = {} if granian else {"root": root}
            servers[side] = kind(workdir, server.url_for(names[side]), side, **extra, **knobs[side])
        tokens = http_bench.write_tokens(workdir, args.wallets)
        kinds = {
            "spend": {"path": http_bench.SPEND[0]},
            "balance": {"path": http_bench.BALANCE, "method": "GET", "body": None, "ok": 200},
        }
        for side in trees:  # warm-up
            for kw in kinds.values():
                http_bench.run_wrk(servers[side].base, tokens, clients=16, duration=1, **kw)
        for index in range(args.rounds):
            for kind, kw in kinds.items():
                for side in trees:
                    result = http_bench.run_wrk(
                        servers[side].base, tokens, clients=16, duration=args.seconds, **kw
                    )
                    cell = http_bench.cell_from_wrk(
                        f"{side}_{kind}", "spread", 16, result, kw.get("ok", 201)
                    )
                    runs[side].setdefault(kind, []).append(cell)
                    print(f"round {index + 1} {kind:<8} {side:<7} {cell['tps']:>8} /s", flush=True)
    finally:
        for gunicorn in servers.values():
            gunicorn.stop()
    cpu: dict[str, dict] = {side: {} for side in trees}
    try:
        for kind in ("spend", "balance") if args.after_server == "gunicorn" and args.cpu else ():
            for mode in ("cpu", "cprofile"):
                for side, root in trees.items():
                    server.clone(template, names[side])
                    figures = profile_http.profile_server(
                        server.url_for(names[side]),
                        workdir,
                        kind,
                        args.cpu_seconds,
                        args.wallets,
                        mode,
                        root=root,
                        **knobs[side],
                    )
                    figures.pop("stats", None)
                    if mode == "cprofile":
                        figures = {
                            "python_calls_per_request": figures["calls_per_request"],
                            "cprofile_stages_ms": figures["stages_ms"],
                        }
                    cpu[side].setdefault(kind, {}).update(figures)
    finally:
        for name in (*names.values(), template):
            server.drop(name)
    summary = summarize(runs, cpu)
    summary["label"] = args.label
    summary["trees"] = {side: str(root) for side, root in trees.items()}
    summary["knobs"] = knobs
    summary["after_server"] = args.after_server
    args.output.write_text(json.dumps(summary, indent=1) + "\n")
    print_summary(summary)


def summarize(runs: dict, cpu: dict) -> dict:
    out: dict = {"rounds": runs, "cpu": cpu, "median_tps": {}}
    for side, kinds in runs.items():
        out["median_tps"][side] = {
            kind: statistics.median(c["tps"] or 0 for c in cells) for kind, cells in kinds.items()
        }
    return out


def print_summary(summary: dict) -> None:
    tps, cpu = summary["median_tps"], summary["cpu"]
    print(f"\n{'figure':<44}{'before':>10}{'after':>10}{'after/before':>14}")
    if not cpu["before"]:
        print(f"\n{'figure':<44}{'before':>10}{'after':>10}")
        for kind, value in tps["before"].items():
            print(
                f"HTTP {kind} /s (16 conn., median round)".ljust(44)
                + f"{value:>10.1f}{tps['after'][kind]:>10.1f}"
            )
        return
    rows = [
        ("HTTP spend /s (16 conn., median round)", tps["before"]["spend"], tps["after"]["spend"]),
        (
            "HTTP balance /s (16 conn., median round)",
            tps["before"]["balance"],
            tps["after"]["balance"],
        ),
    ]
    for kind in ("spend", "balance"):
        for key, label in (
            ("cpu_ms", "CPU ms"),
            ("outside_spend_ms", "outside spend ms"),
            ("python_calls_per_request", "Python calls"),
        ):
            rows.append(
                (f"{kind}: {label} per request", cpu["before"][kind][key], cpu["after"][kind][key])
            )
    for label, before, after in rows:
        ratio = after / before if before else float("nan")
        print(f"{label:<44}{before:>10.2f}{after:>10.2f}{ratio:>14.2f}")


if __name__ == "__main__":
    main()
