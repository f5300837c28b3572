"""The benchmark's CPU split (bench/cpu_split.py) counts what exited inside the window
once, and the ceiling derived from it (bench/report.py) is the arithmetic the
performance page states; without /proc there is no split, and no crash."""

from __future__ import annotations

from pathlib import Path

from bench.cpu_split import CpuSplit, descendants, named, parse_stat
from bench.report import cpu_split


def _stat(pid: int, ppid: int, comm: str, ticks: int, child_ticks: int = 0, started: int = 1):
    """A /proc/<pid>/stat line with utime = ticks, cutime = child_ticks."""
    fields = ["S", ppid, *[0] * 9, ticks, 0, child_ticks, 0, *[0] * 4, started, 0]
    return f"{pid} ({comm}) " + " ".join(str(f) for f in fields) + "\n"


def _proc(root: Path, busy: int, idle: int, procs: list[str]) -> None:
    for child in root.glob("*"):
        if child.is_dir():
            (child / "stat").unlink()
            child.rmdir()
    (root / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1\ncpu1 1\n")
    for line in procs:
        folder = root / line.split()[0]
        folder.mkdir()
        (folder / "stat").write_text(line)


def test_a_comm_with_spaces_and_parentheses_is_parsed():
    proc = parse_stat(_stat(7, 1, "a (b) c", 12, 5, started=99))
    assert (proc.pid, proc.ppid, proc.comm, proc.ticks, proc.child_ticks, proc.started) == (
        7,
        1,
        "a (b) c",
        12,
        5,
        99,
    )


def test_a_process_reaped_inside_the_window_counts_only_its_time_in_the_window(tmp_path):
    """wrk (pid 11) had spent 10 ticks at the start and 30 when the bench reaped it: the
    bench's cutime grows by 30, of which 20 fell in the window; a child born and reaped
    in the window (40 ticks) counts whole. The postmaster's backend 21 is new."""
    _proc(
        tmp_path,
        busy=1000,
        idle=1000,
        procs=[_stat(10, 1, "python", 5), _stat(11, 10, "wrk", 10), _stat(20, 1, "postgres", 50)],
    )
    split = CpuSplit(
        {"load generator": descendants(10), "postgres": named("postgres")}, proc=tmp_path
    )
    split.start()
    _proc(
        tmp_path,
        busy=1200,
        idle=1100,
        procs=[
            _stat(10, 1, "python", 6, child_ticks=70),
            _stat(20, 1, "postgres", 80),
            _stat(21, 20, "postgres", 15, started=5),
        ],
    )
    split.stop()
    assert split.ticks() == {"load generator": 1 + 20 + 40, "postgres": 30 + 15, "other": 94}
    figures = split.per_op(ops=10)
    assert figures["machine_busy_share"] == round(200 / 300, 3)
    assert figures["cpu_cores"] == 2


def test_without_proc_there_is_no_split(tmp_path):
    with CpuSplit({"postgres": named("postgres")}, proc=tmp_path / "missing") as split:
        pass
    assert split.ticks() == {} and split.per_op(100) == {}


def test_the_ceiling_swaps_the_app_server_for_the_floors():
    def cell(system: str, clients: int, tps: float, split: dict) -> dict:
        return {"system": system, "mode": "spread", "clients": clients, "tps": tps} | {
            "cpu_ms_per_op": split,
            "machine_busy_share": 0.9,
        }

    cells = [
        cell("http", 16, 400, {"app server": 3.0, "postgres": 1.5, "other": 0.5}),
        cell("http_floor", 16, 1000, {"app server": 1.0, "postgres": 0.8, "other": 0.2}),
        cell("ours_ref", 8, 1000, {"bench process (services.spend)": 0.7, "postgres": 0.7}),
    ]
    split = cpu_split(cells, cores=2)
    ceiling = split["ceiling"]["http"]
    assert ceiling["cpu_ms_per_op_at_floor"] == 3.0  # 5.0 - 3.0 + 1.0
    assert ceiling["tps"] == round(2000 / 3.0, 1)
    assert ceiling["vs_services_spend"] == round(2000 / 3.0 / 1000, 3)
    assert split["cells"]["ours_ref"]["total_ms"] == 1.4
    assert "http_balance" not in split["ceiling"]
    assert cpu_split([c | {"cpu_ms_per_op": None} for c in cells], cores=2) == {}
