"""The API's speed targets of one run (docs/performance.md, "API speed targets").

Every run with the HTTP block writes them — quick runs too — with the cells and the CPU
figures behind them to bench/results/http_targets.json (bench/run.py), which the docs
render (docs/hooks.py), so a quick run is enough to publish the API's current figures.
"""

from __future__ import annotations

from bench.report import _fmt, _label, _share, compute_ratios, cpu_split, cpu_split_columns

API_TARGETS = (
    "http_spend16_vs_services_spend8.spread",
    "http_spend_vs_peer.16",
    "http_open_loop.50%.p99_ms",
    "http_open_loop.75%.p99_ms",
    "http_open_loop.late_sends (50% + 75%)",
    "http_balance_vs_spend.16",
    "http_spend_vs_wsgi_floor.16",
    "cpu_per_request_outside_spend.spend_ms",
    "cpu_per_request_outside_spend.balance_ms",
)
API_CELLS = ("http", "http_floor", "http_peer", "http_balance", "http_floor_balance", "ours_ref")


def api_targets(results: dict) -> dict:
    """The API targets of one run and what they were computed from."""
    ratios = compute_ratios(results["cells"], results)
    return {
        "meta": results["meta"],
        "targets": {name: ratios[name] for name in API_TARGETS if name in ratios},
        "context": {
            name: ratios[name]
            for name in (
                "http_balance_vs_wsgi_floor.16",
                "http_open_loop.25%.p99_ms",
                "http_floor_open_loop.25%.p99_ms",
                "http_floor_open_loop.50%.p99_ms",
                "http_floor_open_loop.75%.p99_ms",
            )
            if name in ratios
        },
        "cells": [
            c
            for c in results["cells"]
            if c["system"] in API_CELLS or c["system"] in ("http_open", "http_floor_open")
        ],
        "cpu_profile": results.get("cpu_profile") or {},
        "cpu_split": cpu_split(results["cells"], results["meta"]["cores"]),
    }


def api_targets_markdown(data: dict) -> str:
    """The target table, then the per-request CPU figures (docs/hooks.py renders it)."""
    meta = data["meta"]
    lines = [
        f"Run of {meta['when']} ({'quick' if meta['quick'] else 'full'}, "
        f"{meta['duration_per_cell_s']:g} s per cell; load average at the end "
        f"{', '.join(str(x) for x in meta['loadavg_at_end'])} on {meta['cores']} cores).",
        "",
        "| target | value | target | met |",
        "|---|---:|---|---|",
    ]
    for name, r in {**data["targets"], **data["context"]}.items():
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        lines.append(f"| `{name}` | {_fmt(r['value'], 2)} | {r['target'] or ''} | {met} |")
    cells = {c["system"]: c for c in data["cells"] if c["mode"] == "spread"}
    lines += ["", "| row (16 connections; the reference 8 threads) | /s | p50 ms | p99 ms |"]
    lines.append("|---|---:|---:|---:|")
    for system in API_CELLS:
        if system in cells:
            c = cells[system]
            lines.append(
                f"| {_label(system)} | {_fmt(c['tps'])} | {_fmt(c['p50_ms'], 1)} | "
                f"{_fmt(c['p99_ms'], 1)} |"
            )
    cpu = data.get("cpu_profile") or {}
    if cpu:
        lines += [
            "",
            "Per-request CPU of the production server's worker (no profiler; one worker,"
            " one thread, wrk at 2 connections), ms:",
            "",
            "| request | whole worker | in the WSGI app | in services.spend | outside "
            "services.spend | Python calls (cProfile) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for path, f in cpu.items():
            lines.append(
                f"| {path} | {_fmt(f.get('cpu_ms'), 2)} | {_fmt(f.get('app_cpu_ms'), 2)} | "
                f"{_fmt(f.get('spend_ms'), 2)} | {_fmt(f.get('outside_spend_ms'), 2)} | "
                f"{_fmt(f.get('python_calls_per_request'))} |"
            )
        stages = [p for p in cpu if cpu[p].get("cprofile_stages_ms")]
        if stages:
            names = list(dict.fromkeys(n for p in stages for n in cpu[p]["cprofile_stages_ms"]))
            lines += [
                "",
                "Under cProfile (ms per request, 2–3 × the real cost: read as shares):",
                "",
                "| stage | " + " | ".join(stages) + " |",
                "|---|" + "---:|" * len(stages),
            ]
            for n in names:
                values = [_fmt(cpu[p]["cprofile_stages_ms"].get(n), 2) for p in stages]
                lines.append(f"| {n} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def cpu_split_markdown(data: dict) -> str:
    """Where the machine's CPU went per operation in the ratio cells, then each HTTP
    row's ceiling at the floor's app-server cost (docs/hooks.py renders it)."""
    split = data.get("cpu_split") or {}
    if not split:
        return (
            "The run in `bench/results/http_targets.json` has no CPU split (it predates"
            " bench/cpu_split.py, or ran where there is no /proc)."
        )
    groups = cpu_split_columns(split)
    lines = [
        "| row | /s | " + " | ".join(groups) + " | total | machine busy |",
        "|---|---:|" + "---:|" * (len(groups) + 2),
    ]
    for system, row in split["cells"].items():
        values = [_fmt(row["cpu_ms_per_op"].get(name), 2) for name in groups]
        lines.append(
            f"| {_label(system)} | {_fmt(row['tps'])} | "
            + " | ".join(values)
            + f" | {_fmt(row['total_ms'], 2)} | {_share(row['machine_busy_share'])} |"
        )
    reference = split.get("reference_tps")
    lines += [
        "",
        f"Ceiling: {split['cores']} cores × 1,000 ms ÷ the row's CPU per request with its app"
        " server costing only what the floor's does (everything else as measured);"
        f" services.spend measured {_fmt(reference)} /s:",
        "",
        "| row | app server ms | floor's app server ms | total ms at the floor's | ceiling /s |"
        " ceiling ÷ services.spend |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for system, c in split["ceiling"].items():
        lines.append(
            f"| {_label(system)} | {_fmt(c['app_server_ms'], 2)} | "
            f"{_fmt(c['floor_app_server_ms'], 2)} | {_fmt(c['cpu_ms_per_op_at_floor'], 2)} | "
            f"{_fmt(c['tps'])} | {_fmt(c['vs_services_spend'], 2)} |"
        )
    return "\n".join(lines)
