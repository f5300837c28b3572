"""MkDocs hook: the performance page's figures come from bench/results/latest.json.

`make bench` writes that file; at build time this hook renders its tables into the
page (replacing `<!-- bench:NAME -->` markers) and publishes its plots, so the
published figures are always the last run's and can never drift from it. A missing
results file, or a marker this hook does not know, fails the build.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PLOTS = ("throughput.png", "latency.png", "open_loop.png")


def _results() -> dict:
    path = RESULTS / "latest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PluginError(f"cannot read {path} (run `make bench`): {exc}") from exc


def _fmt(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _meta(results: dict) -> str:
    meta = results["meta"]
    load = ", ".join(str(v) for v in meta.get("loadavg_at_end") or []) or "—"
    return "\n".join(
        [
            "| setting | value |",
            "|---|---|",
            f"| run started | {meta['when']} |",
            f"| kind | {'quick run' if meta.get('quick') else 'full run'} |",
            f"| seconds per cell | {meta.get('duration_per_cell_s')} |",
            f"| wallets | {meta.get('wallets'):,} |",
            f"| CPU cores | {meta.get('cores')} |",
            f"| Python | {meta.get('python')} |",
            f"| PostgreSQL | {meta.get('postgres')} |",
            f"| load average at the end (1, 5, 15 min) | {load} |",
            f"| wall time of the run | {_fmt(meta.get('wall_time_s'), 0)} s |",
        ]
    )


def _report_markdown(results: dict) -> tuple[str, str]:
    """(spend table, ratio table) exactly as `python -m bench.report` prints them."""
    if str(ROOT) not in sys.path:  # MkDocs loads hooks from a file, not from the repository
        sys.path.insert(0, str(ROOT))
    from bench.report import compute_ratios, ratio_table, results_tables

    # Today's definitions and targets, on the file's cells.
    results = {**results, "ratios": compute_ratios(results["cells"], results)}
    return results_tables(results), ratio_table(results)


def _http_targets() -> dict:
    """bench/results/http_targets.json: the last run with the HTTP block (quick too)."""
    path = RESULTS / "http_targets.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PluginError(f"cannot read {path} (run `make bench QUICK=1`): {exc}") from exc
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return data


def _api_targets(_results: dict) -> str:
    data = _http_targets()
    from bench.api_targets import api_targets_markdown

    return api_targets_markdown(data)


def _cpu_split(_results: dict) -> str:
    data = _http_targets()
    from bench.api_targets import cpu_split_markdown

    return cpu_split_markdown(data)


def _spend_table(results: dict) -> str:
    return _report_markdown(results)[0]


def _ratios(results: dict) -> str:
    return _report_markdown(results)[1]


def _verify_ledger(results: dict) -> str:
    runs = (results.get("verify_ledger") or {}).get("runs") or []
    if not runs:
        return "This run did not measure `verify_ledger`."
    lines = [
        "| ledger rows | audit events | wall time | CPU time | peak memory (RSS) | exit |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run['rows']:,} | {run.get('events', 0):,} | {_fmt(run.get('wall_s'))} s "
            f"| {_fmt(run.get('cpu_s'))} s | {run.get('peak_mb')} MB | {run.get('exit')} |"
        )
    return "\n".join(lines)


def _history(results: dict) -> str:
    history = results.get("history") or {}
    if not history.get("small"):
        return "This run did not measure the history endpoint."
    rows = history.get("rows", {})
    lines = [
        "| history length | first page p50 | first page p95 | 20 pages deep p50 |",
        "|---:|---:|---:|---:|",
    ]
    for size in ("small", "large"):
        h = history[size]
        lines.append(
            f"| {rows.get(size, 0):,} rows | {_fmt(h['first_p50_ms'])} ms "
            f"| {_fmt(h['first_p95_ms'])} ms | {_fmt(h['deep_p50_ms'])} ms |"
        )
    lines.append("")
    lines.append(
        f"Large / small: first page {_fmt(history.get('ratio'), 2)}, "
        f"deep page {_fmt(history.get('deep_ratio'), 2)}."
    )
    return "\n".join(lines)


RENDERERS = {
    "meta": _meta,
    "spend-table": _spend_table,
    "ratios": _ratios,
    "api-targets": _api_targets,
    "cpu-split": _cpu_split,
    "verify-ledger": _verify_ledger,
    "history": _history,
}


def on_files(files, config):
    """Publish the run's plots as img/bench/*.png (they live in bench/results/)."""
    for name in PLOTS:
        path = RESULTS / name
        if path.exists():
            files.append(File.generated(config, f"img/bench/{name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- bench:" not in markdown:
        return markdown
    results = _results()
    for name, render in RENDERERS.items():
        markdown = markdown.replace(f"<!-- bench:{name} -->", render(results))
    if "<!-- bench:" in markdown:
        unknown = markdown[markdown.index("<!-- bench:") :].split("-->", 1)[0]
        raise PluginError(f"{page.file.src_uri}: unknown marker {unknown}-->")
    return markdown
