"""Ratios, targets, the printed table and the PNG plots of one benchmark run."""

from __future__ import annotations

from pathlib import Path

from bench.systems import CLIENTS, EXTRA_LABELS, MODES, SYSTEM_LABELS

OPEN_LOOP_MODES = ("25%", "50%", "75%")


def _cell(cells: list[dict], system: str, mode: str, clients: int) -> dict | None:
    for cell in cells:
        if (cell["system"], cell["mode"], cell["clients"]) == (system, mode, clients):
            return cell
    return None


def _tps(cells: list[dict], system: str, mode: str, clients: int) -> float | None:
    cell = _cell(cells, system, mode, clients)
    return cell["tps"] if cell and cell["tps"] else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def compute_ratios(cells: list[dict], extra: dict) -> dict:
    """Every ratio of issue 7, each with its target and whether this run met it."""
    t = lambda s, m, n: _tps(cells, s, m, n)  # noqa: E731
    ratios: dict[str, dict] = {}

    def add(name: str, value: float | None, target: str | None = None, met=None) -> None:
        ratios.setdefault(name, {"value": value, "target": target, "met": met})

    def at_least(name: str, value: float | None, bound: float) -> None:
        add(name, value, f">= {bound}", None if value is None else value >= bound)

    at_least("ours_vs_floor.spread.8", _ratio(t("ours", "spread", 8), t("floor", "spread", 8)), 1.0)
    at_least("ours_vs_orm.spread.8", _ratio(t("ours", "spread", 8), t("orm", "spread", 8)), 3.0)
    at_least("ours_vs_pgbench.hot.8", _ratio(t("ours", "hot", 8), t("pgbench", "hot", 8)), 0.7)
    http = _cell(cells, "http", "spread", 16)
    at_least(
        "http_vs_pgbench.spread.16",
        _ratio(t("http", "spread", 16), t("pgbench", "spread", 16)),
        0.2,
    )
    p99 = http["p99_ms"] if http else None
    add("http.spread.16.p99_ms", p99, "< 50", None if p99 is None else p99 < 50)
    history = extra.get("history") or {}
    if history.get("ratio") is not None:
        add("history.large_vs_small", history["ratio"], "<= 1.5", history["ratio"] <= 1.5)
    for run in (extra.get("verify_ledger") or {}).get("runs", []):
        if run.get("peak_mb") is not None:
            add(
                f"verify_ledger.{run['rows']}.peak_mb",
                run["peak_mb"],
                "< 300" if run["rows"] >= 10**6 else None,
                run["peak_mb"] < 300 if run["rows"] >= 10**6 else None,
            )
    # The HTTP API (targets of "API speed II"), each ratio from cells measured seconds apart.
    http16 = t("http", "spread", 16)
    at_least(
        "http_spend16_vs_services_spend8.spread", _ratio(http16, t("ours_ref", "spread", 8)), 0.6
    )
    at_least("http_spend_vs_peer.16", _ratio(http16, t("http_peer", "spread", 16)), 2.0)
    at_least("http_balance_vs_spend.16", _ratio(t("http_balance", "spread", 16), http16), 2.5)
    at_least("http_spend_vs_wsgi_floor.16", _ratio(http16, t("http_floor", "spread", 16)), 0.5)
    add(
        "http_balance_vs_wsgi_floor.16",
        _ratio(t("http_balance", "spread", 16), t("http_floor_balance", "spread", 16)),
    )
    for share, bound in (("50%", 25), ("75%", 50)):
        cell = _cell(cells, "http_open", share, 32)
        p99_open = cell["p99_ms"] if cell else None
        add(
            f"http_open_loop.{share}.p99_ms",
            p99_open,
            f"<= {bound}",
            None if p99_open is None else p99_open <= bound,
        )
    late = [c.get("late") for c in cells if c["system"] == "http_open" and c["mode"] != "25%"]
    if late:
        total = sum(x or 0 for x in late)
        add("http_open_loop.late_sends (50% + 75%)", total, "= 0", total == 0)
    for path, bound in (("spend", 3.0), ("balance", 2.0)):
        cpu = (extra.get("cpu_profile") or {}).get(path) or {}
        value = cpu.get("outside_spend_ms")
        add(
            f"cpu_per_request_outside_spend.{path}_ms",
            value,
            f"<= {bound}",
            None if value is None else value <= bound,
        )
    at_least(
        "transfer_vs_spend.spread.16",
        _ratio(t("transfer", "spread", 16), t("ours", "spread", 16)),
        0.7,
    )
    at_least(
        "transfer_vs_spend.hot.16", _ratio(t("transfer", "hot", 16), t("ours", "hot", 16)), 0.5
    )
    add("transfer_vs_spend.spread.8", _ratio(t("transfer", "spread", 8), t("ours", "spread", 8)))
    add("transfer_vs_spend.hot.8", _ratio(t("transfer", "hot", 8), t("ours", "hot", 8)))
    for share in OPEN_LOOP_MODES:
        cell = _cell(cells, "http_open", share, 32)
        if cell:
            add(f"http_open_loop.{share}.p50_ms", cell["p50_ms"])
            if share == "25%":
                add(f"http_open_loop.{share}.p99_ms", cell["p99_ms"])
        floor = _cell(cells, "http_floor_open", share, 32)
        if floor:  # the same offered load on the minimal WSGI app: the machine's own tail
            add(f"http_floor_open_loop.{share}.p99_ms", floor["p99_ms"])
    # Context (no target): how each system relates to the ceiling and to each other.
    for n in CLIENTS:
        for mode in MODES:
            for system in ("floor", "orm", "djwallet", "ours", "ours_2proc", "http"):
                add(
                    f"{system}_vs_pgbench.{mode}.{n}",
                    _ratio(t(system, mode, n), t("pgbench", mode, n)),
                )
    add("ours_vs_pgbench.hot.16", _ratio(t("ours", "hot", 16), t("pgbench", "hot", 16)))
    add("ours_vs_floor_min.spread.8", _ratio(t("ours", "spread", 8), t("floor_min", "spread", 8)))
    add("ours_vs_pgbench_min.hot.8", _ratio(t("ours", "hot", 8), t("pgbench_min", "hot", 8)))
    add("ours_vs_djwallet.spread.8", _ratio(t("ours", "spread", 8), t("djwallet", "spread", 8)))
    for mode in MODES:
        add(
            f"audit_chain_cost.{mode}.8 (with/without)",
            _ratio(t("ours", mode, 8), t("ours_noaudit", mode, 8)),
        )
    return ratios


# The CPU split (bench/cpu_split.py): its rows, the (system, clients) of each, the
# process groups in column order, and the floor cell whose app server each HTTP row's
# ceiling assumes (the same request against the minimal WSGI app).
CPU_SPLIT_ROWS = (
    ("http", 16),
    ("http_floor", 16),
    ("http_peer", 16),
    ("http_balance", 16),
    ("http_floor_balance", 16),
    ("ours_ref", 8),
)
CPU_GROUPS = (
    "app server",
    "load generator",
    "bench process (services.spend)",
    "postgres",
    "redis",
    "other",
)
CEILING_FLOOR = {
    "http": "http_floor",
    "http_floor": "http_floor",
    "http_peer": "http_floor",
    "http_balance": "http_floor_balance",
    "http_floor_balance": "http_floor_balance",
}
SPEND_ROWS = ("http", "http_floor", "http_peer")


def _split_row(cell: dict, cores: int) -> dict:
    split = cell["cpu_ms_per_op"]
    total = sum(split.values())
    return {
        "tps": cell["tps"],
        "cpu_ms_per_op": split,
        "total_ms": round(total, 3),
        "machine_busy_share": cell.get("machine_busy_share"),
        "tps_at_full_cpu": round(cores * 1000 / total, 1) if total else None,
    }


def _ceiling(row: dict, floor: dict, cores: int, reference_tps: float | None) -> dict:
    """The row's throughput if its app server cost only what the floor's does per
    request, everything else (PostgreSQL, Redis, wrk, kernel) as measured."""
    app = row["cpu_ms_per_op"].get("app server", 0.0)
    floor_app = floor["cpu_ms_per_op"].get("app server", 0.0)
    at_floor = row["total_ms"] - app + floor_app
    tps = cores * 1000 / at_floor if at_floor > 0 else None
    return {
        "app_server_ms": app,
        "floor_app_server_ms": floor_app,
        "cpu_ms_per_op_at_floor": round(at_floor, 3),
        "tps": None if tps is None else round(tps, 1),
        "vs_services_spend": _ratio(tps, reference_tps),
    }


def cpu_split(cells: list[dict], cores: int) -> dict:
    """Per-operation CPU of each process group in the HTTP ratios' cells, and each HTTP
    row's ceiling: what `cores` fully busy would serve if the app server were as cheap
    as the floor's (and, for a spend, that ceiling ÷ the measured services.spend)."""
    rows: dict[str, dict] = {}
    for system, clients in CPU_SPLIT_ROWS:
        cell = _cell(cells, system, "spread", clients)
        if cell and cell.get("cpu_ms_per_op"):
            rows[system] = _split_row(cell, cores)
    if not rows:
        return {}
    reference_tps = _tps(cells, "ours_ref", "spread", 8)
    ceiling = {
        system: {"floor": floor}
        | _ceiling(
            rows[system], rows[floor], cores, reference_tps if system in SPEND_ROWS else None
        )
        for system, floor in CEILING_FLOOR.items()
        if system in rows and floor in rows
    }
    return {"cores": cores, "reference_tps": reference_tps, "cells": rows, "ceiling": ceiling}


def cpu_split_columns(section: dict) -> list[str]:
    """The groups some row of the section has, in CPU_GROUPS order."""
    present = {name for row in section["cells"].values() for name in row["cpu_ms_per_op"]}
    return [name for name in CPU_GROUPS if name in present] + sorted(present - set(CPU_GROUPS))


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _label(system: str) -> str:
    return SYSTEM_LABELS.get(system) or EXTRA_LABELS.get(system, system)


# Rows of the main table, in order; a row shows the columns it was measured in.
TABLE_SYSTEMS = (
    *SYSTEM_LABELS,
    "http_balance",
    "http_peer",
    "http_floor",
    "http_floor_balance",
    "ours_ref",
    "transfer",
    "pgbench_min",
    "floor_min",
    "ours_noaudit",
)
HTTP_CLIENTS = (1, 4, 8, 16, 32)


def _columns(cells: list[dict]) -> list[tuple[str, int]]:
    counts = sorted({c["clients"] for c in cells if c["mode"] in MODES} | set(CLIENTS))
    return [(mode, n) for mode in MODES for n in counts]


def _rows(cells: list[dict]) -> list[tuple[str, list[dict | None]]]:
    columns = _columns(cells)
    rows = []
    for system in TABLE_SYSTEMS:
        row = [_cell(cells, system, mode, n) for mode, n in columns]
        if any(row):
            rows.append((system, row))
    return rows


def _used_columns(cells: list[dict]) -> list[int]:
    rows = _rows(cells)
    return [i for i in range(len(_columns(cells))) if any(row[i] for _, row in rows)]


def _ratio_rows(results: dict, *, all_context: bool) -> list[tuple[str, dict]]:
    out = []
    for name, r in results["ratios"].items():
        if r["value"] is None and r["target"] is None:
            continue
        if not all_context and r["target"] is None and "_vs_pgbench." in name:
            continue
        out.append((name, r))
    return out


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    cells = results["cells"]
    console = Console(width=200)
    columns, used = _columns(cells), _used_columns(cells)
    table = Table(title="Operations per second (p99 ms)", show_lines=False)
    table.add_column("system")
    for i in used:
        table.add_column(f"{columns[i][0]} {columns[i][1]}", justify="right")
    for system, row in _rows(cells):
        table.add_row(
            _label(system),
            *[
                f"{_fmt(row[i]['tps'])} ({_fmt(row[i]['p99_ms'], 1)})" if row[i] else ""
                for i in used
            ],
        )
    console.print(table)
    open_loop = [c for c in cells if c["system"] == "http_open"]
    if open_loop:
        loop = Table(title="HTTP spend, open loop (Poisson arrivals, 32 connections)")
        columns = ("share of saturation", "offered /s", "served /s", "p50", "p99", "late")
        for column in (*columns, "floor p99 (same load)"):
            loop.add_column(column, justify="right")
        for c in open_loop:
            floor = _cell(cells, "http_floor_open", c["mode"], 32)
            loop.add_row(
                c["mode"],
                _fmt(c["offered_rps"], 1),
                _fmt(c["tps"], 1),
                _fmt(c["p50_ms"], 1),
                _fmt(c["p99_ms"], 1),
                str(c["late"]),
                _fmt(floor["p99_ms"], 1) if floor else "",
            )
        console.print(loop)
    ratios = Table(title="Ratios (this run)")
    for column in ("ratio", "value", "target", "met"):
        ratios.add_column(column)
    for name, r in _ratio_rows(results, all_context=True):
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        ratios.add_row(name, _fmt(r["value"], 2), r["target"] or "", met)
    console.print(ratios)
    split = cpu_split(cells, results["meta"]["cores"])
    if split:
        _print_cpu_split(console, split)


def _print_cpu_split(console, split: dict) -> None:
    from rich.table import Table

    groups = cpu_split_columns(split)
    table = Table(title="CPU per operation, ms (whole machine, /proc)")
    table.add_column("row")
    for column in ("/s", *groups, "total", "machine busy"):
        table.add_column(column, justify="right")
    for system, row in split["cells"].items():
        values = [_fmt(row["cpu_ms_per_op"].get(name), 2) for name in groups]
        table.add_row(
            _label(system),
            _fmt(row["tps"]),
            *values,
            _fmt(row["total_ms"], 2),
            _share(row["machine_busy_share"]),
        )
    console.print(table)
    ceiling = Table(
        title=f"Ceiling: app server as cheap as the floor's, {split['cores']} cores fully busy"
    )
    for column in ("row", "app server ms", "floor's", "total ms at floor's", "ceiling /s"):
        ceiling.add_column(column, justify="right")
    ceiling.add_column("÷ services.spend", justify="right")
    for system, c in split["ceiling"].items():
        ceiling.add_row(
            _label(system),
            _fmt(c["app_server_ms"], 2),
            _fmt(c["floor_app_server_ms"], 2),
            _fmt(c["cpu_ms_per_op_at_floor"], 2),
            _fmt(c["tps"]),
            _fmt(c["vs_services_spend"], 2),
        )
    console.print(ceiling)


def plot(results: dict, folder: Path, prefix: str = "") -> None:
    """throughput.png and latency.png (per mode, one line per system, vs clients) and
    open_loop.png (HTTP spend latency percentiles vs offered load)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = results["cells"]
    systems = [s for s in TABLE_SYSTEMS if any(c["system"] == s for c in cells)]
    colors = {s: plt.cm.tab20(i % 20) for i, s in enumerate(TABLE_SYSTEMS)}
    quick = " (quick run)" if results["meta"]["quick"] else ""
    title = f"{results['meta']['when']}, {results['meta']['cores']} cores{quick}"
    for name, metrics in (
        ("throughput", [("tps", "operations per second")]),
        ("latency", [("p50_ms", "p50 latency (ms)"), ("p99_ms", "p99 latency (ms)")]),
    ):
        rows = len(metrics)
        fig, axes = plt.subplots(rows, 2, figsize=(13, 4.6 * rows), squeeze=False)
        for r, (key, label) in enumerate(metrics):
            for c, mode in enumerate(MODES):
                ax = axes[r][c]
                for system in systems:
                    points = sorted(
                        (cell["clients"], cell[key])
                        for cell in cells
                        if cell["system"] == system
                        and cell["mode"] == mode
                        and cell[key] is not None
                    )
                    if points:
                        xs, ys = zip(*points, strict=True)
                        ax.plot(xs, ys, marker="o", label=_label(system), color=colors[system])
                ax.set_title(
                    f"{label} — {mode}{' (one wallet)' if mode == 'hot' else ' (10,000 wallets)'}"
                )
                ax.set_xlabel("clients (threads or HTTP connections)")
                ax.set_xscale("log", base=2)
                ax.set_xticks(HTTP_CLIENTS, [str(n) for n in HTTP_CLIENTS])
                ax.set_ylabel(label)
                ax.set_yscale("log")
                ax.grid(True, alpha=0.3)
                if ax.get_legend_handles_labels()[0]:
                    ax.legend(fontsize=7)
        fig.suptitle(f"Divine Whispers wallet benchmark — {title}")
        fig.tight_layout()
        fig.savefig(folder / f"{prefix}{name}.png", dpi=100)
        plt.close(fig)
    open_loop = sorted(
        (c for c in cells if c["system"] == "http_open"), key=lambda c: c["offered_rps"]
    )
    if open_loop:
        fig, ax = plt.subplots(figsize=(8, 4.8))
        xs = [c["offered_rps"] for c in open_loop]
        for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
            ax.plot(xs, [c[key] for c in open_loop], marker="o", label=label)
        ax.axhline(25, color="grey", linestyle="--", linewidth=1, label="p99 target at 50 %")
        for c in open_loop:
            ax.annotate(c["mode"], (c["offered_rps"], c["p99_ms"]), fontsize=8)
        ax.set_xlabel("offered load (spends per second, Poisson arrivals)")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"HTTP POST /wallet/spend, open loop — {title}")
        fig.tight_layout()
        fig.savefig(folder / f"{prefix}open_loop.png", dpi=100)
        plt.close(fig)


def results_tables(results: dict) -> str:
    """Every system's cells, then the HTTP open loop and the configurations (markdown)."""
    cells = results["cells"]
    columns, used = _columns(cells), _used_columns(cells)
    lines = [
        "| system | " + " | ".join(f"{columns[i][0]} {columns[i][1]}" for i in used) + " |",
        "|---|" + "---:|" * len(used),
    ]
    for system, row in _rows(cells):
        values = [
            f"{_fmt(row[i]['tps'])} / {_fmt(row[i]['p50_ms'], 1)} / {_fmt(row[i]['p99_ms'], 1)}"
            if row[i]
            else ""
            for i in used
        ]
        lines.append(f"| {_label(system)} | " + " | ".join(values) + " |")
    open_loop = [c for c in cells if c["system"] == "http_open"]
    if open_loop:
        lines += [
            "",
            "HTTP `POST /api/v1/wallet/spend`, open loop (Poisson arrivals over 32 connections;"
            " `late` = arrivals that found no idle connection and were sent late):",
            "",
            "| share of saturation | offered /s | served /s | p50 ms | p95 ms | p99 ms | late |"
            " floor p99 ms (same load) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in open_loop:
            floor = _cell(cells, "http_floor_open", c["mode"], 32)
            lines.append(
                f"| {c['mode']} | {_fmt(c['offered_rps'], 1)} | {_fmt(c['tps'], 1)} | "
                f"{_fmt(c['p50_ms'], 1)} | {_fmt(c['p95_ms'], 1)} | {_fmt(c['p99_ms'], 1)} | "
                f"{c['late']} | {_fmt(floor['p99_ms'], 1) if floor else ''} |"
            )
    configs = results.get("http_configs") or {}
    if configs:
        lines += [
            "",
            "Worker model and connection handling (HTTP, 16 connections, documented knobs"
            " only; median of the rounds by spend throughput):",
            "",
            "| configuration | spend /s | spend p99 ms | balance /s | balance p99 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, r in configs.items():
            lines.append(
                f"| {label} | {_fmt(r['spend']['tps'])} | {_fmt(r['spend']['p99_ms'], 1)} | "
                f"{_fmt(r['balance']['tps'])} | {_fmt(r['balance']['p99_ms'], 1)} |"
            )
    return "\n".join(lines)


def ratio_table(results: dict) -> str:
    lines = ["| ratio | value | target | met |", "|---|---:|---|---|"]
    for name, r in _ratio_rows(results, all_context=False):
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        lines.append(f"| `{name}` | {_fmt(r['value'], 2)} | {r['target'] or ''} | {met} |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The results as Markdown, generated from a results file so they cannot go stale
    (docs/performance.md renders the same tables at build time, through docs/hooks.py)."""
    meta = results["meta"]
    return "\n".join(
        [
            f"Run of {meta['when']} ({'quick' if meta['quick'] else 'full'}, "
            f"{meta['duration_per_cell_s']:g} s per cell, {meta['wall_time_s'] / 60:.1f} min): "
            f"{meta['cores']} cores, PostgreSQL {meta['postgres'].split()[0]}, "
            f"Python {meta['python']}, {meta['wallets']:,} wallets; load average at the end "
            f"{', '.join(str(x) for x in meta['loadavg_at_end'])}. Operations per second / "
            "p50 ms / p99 ms:",
            "",
            results_tables(results),
            "",
            ratio_table(results),
        ]
    )


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Tables and plots from a results file.")
    parser.add_argument(
        "results", nargs="?", default=str(Path(__file__).parent / "results/latest.json")
    )
    parser.add_argument("--plots", action="store_true", help="redraw the PNG plots next to it")
    args = parser.parse_args()
    path = Path(args.results)
    results = json.loads(path.read_text())
    results["ratios"] = compute_ratios(results["cells"], results)  # today's definitions
    if args.plots:
        plot(results, path.parent, prefix="" if path.stem == "latest" else f"{path.stem}-")
    print(markdown(results))


if __name__ == "__main__":
    main()
