"""Ratios, targets, the printed table and the PNG plots of one benchmark run."""

from __future__ import annotations

from pathlib import Path

from bench.systems import CLIENTS, MODES, SYSTEM_LABELS


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


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    cells = results["cells"]
    console = Console(width=160)
    systems = [s for s in (*SYSTEM_LABELS, "pgbench_min", "floor_min", "ours_noaudit", "transfer")]
    table = Table(title="Spends per second (p99 ms)", show_lines=False)
    table.add_column("system")
    for mode in (*MODES, "pair"):
        for n in CLIENTS:
            if mode == "pair" and n != 16:
                continue
            table.add_column(f"{mode} {n}", justify="right")
    for system in systems:
        row = [SYSTEM_LABELS.get(system, system)]
        present = False
        for mode in (*MODES, "pair"):
            for n in CLIENTS:
                if mode == "pair" and n != 16:
                    continue
                cell = _cell(cells, system, mode, n)
                present |= cell is not None
                row.append(f"{_fmt(cell['tps'])} ({_fmt(cell['p99_ms'], 1)})" if cell else "")
        if present:
            table.add_row(*row)
    console.print(table)
    ratios = Table(title="Ratios (this run)")
    for column in ("ratio", "value", "target", "met"):
        ratios.add_column(column)
    for name, r in results["ratios"].items():
        if r["value"] is None and r["target"] is None:
            continue
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        ratios.add_row(name, _fmt(r["value"], 2), r["target"] or "", met)
    console.print(ratios)


def plot(results: dict, folder: Path) -> None:
    """throughput.png and latency.png: one panel per mode, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = results["cells"]
    systems = [s for s in SYSTEM_LABELS if any(c["system"] == s for c in cells)]
    quick = " (quick run)" if results["meta"]["quick"] else ""
    for name, metrics in (
        ("throughput", [("tps", "spends per second")]),
        ("latency", [("p50_ms", "p50 latency (ms)"), ("p99_ms", "p99 latency (ms)")]),
    ):
        rows = len(metrics)
        fig, axes = plt.subplots(rows, 2, figsize=(12, 4.2 * rows), squeeze=False)
        for r, (key, label) in enumerate(metrics):
            for c, mode in enumerate(MODES):
                ax = axes[r][c]
                for system in systems:
                    points = [
                        (n, cell[key])
                        for n in CLIENTS
                        if (cell := _cell(cells, system, mode, n)) and cell[key] is not None
                    ]
                    if points:
                        xs, ys = zip(*points, strict=True)
                        ax.plot(xs, ys, marker="o", label=SYSTEM_LABELS[system])
                ax.set_title(
                    f"{label} — {mode}{' (one wallet)' if mode == 'hot' else ' (10,000 wallets)'}"
                )
                ax.set_xlabel("clients")
                ax.set_xticks(CLIENTS)
                ax.set_ylabel(label)
                if key != "tps":
                    ax.set_yscale("log")
                ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(
            f"Divine Whispers spend benchmark — {results['meta']['when']}, "
            f"{results['meta']['cores']} cores{quick}"
        )
        fig.tight_layout()
        fig.savefig(folder / f"{name}.png", dpi=110)
        plt.close(fig)


def markdown(results: dict) -> str:
    """The README's tables, from a results file (python -m bench.report FILE)."""
    cells = results["cells"]
    lines = [
        "| system | " + " | ".join(f"{m} {n}" for m in MODES for n in CLIENTS) + " |",
        "|---|" + "---:|" * (len(MODES) * len(CLIENTS)),
    ]
    systems = [*SYSTEM_LABELS, "pgbench_min", "floor_min", "ours_noaudit", "transfer"]
    for system in systems:
        row, present = [], False
        for mode in MODES:
            for n in CLIENTS:
                cell = _cell(cells, system, mode, n) or (
                    _cell(cells, system, "pair", n) if mode == "spread" else None
                )
                present |= cell is not None
                row.append(
                    f"{_fmt(cell['tps'])} / {_fmt(cell['p50_ms'], 1)} / {_fmt(cell['p99_ms'], 1)}"
                    if cell
                    else ""
                )
        if present:
            lines.append(f"| {SYSTEM_LABELS.get(system, system)} | " + " | ".join(row) + " |")
    lines += ["", "| ratio | value | target | met |", "|---|---:|---|---|"]
    for name, r in results["ratios"].items():
        if r["target"] is None and not name.startswith(("ours_vs", "audit", "floor_vs_pgbench")):
            continue
        if r["value"] is None and r["target"] is None:
            continue
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        lines.append(f"| `{name}` | {_fmt(r['value'], 2)} | {r['target'] or ''} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    sys.stdout.write(markdown(json.loads(Path(sys.argv[1]).read_text())) + "\n")
