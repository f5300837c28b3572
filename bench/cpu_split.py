"""Where the machine's CPU goes during one benchmark cell, in milliseconds per operation.

A throughput target is only reachable if the CPU one request costs, summed over every
process it touches (app server, PostgreSQL, Redis, the load generator sharing the box,
the kernel), fits in the machine's cores. A profile of the app server alone cannot show
that; reading the kernel's own counters over the cell's window can, without slowing
anything down: /proc/<pid>/stat (utime + stime) for every process and /proc/stat for the
machine, once when the window opens and once when it closes.

Processes that exit inside the window are not lost: their whole lifetime lands in their
parent's cutime + cstime when it reaps them (wrk in the bench process, backends in the
postmaster, a replaced worker in the gunicorn master), so a group counts its members'
delta, its reapers' children delta, and takes back what the departed had already spent
before the window opened.

Without /proc (not Linux) the split is absent: every call returns an empty dict.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
OTHER = "other"


@dataclass(frozen=True)
class Proc:
    """One process as /proc/<pid>/stat shows it (CPU in clock ticks)."""

    pid: int
    ppid: int
    comm: str
    ticks: int  # utime + stime: the process itself, all its threads
    child_ticks: int  # cutime + cstime: the children it has reaped
    started: int  # starttime: with pid, tells a reused pid from the original


Procs = Mapping[int, Proc]
Selector = Callable[[Procs], set[int]]


def parse_stat(text: str) -> Proc:
    """A /proc/<pid>/stat line; comm is cut at the last ")" since it may hold spaces."""
    head, _, rest = text.rpartition(")")
    pid, _, comm = head.partition(" (")
    fields = rest.split()  # fields[0] is the state (field 3 of proc(5))
    return Proc(
        pid=int(pid),
        ppid=int(fields[1]),
        comm=comm,
        ticks=int(fields[11]) + int(fields[12]),
        child_ticks=int(fields[13]) + int(fields[14]),
        started=int(fields[19]),
    )


def read_procs(proc: Path = PROC) -> dict[int, Proc]:
    """Every process visible now; one that exits while being read is skipped."""
    found: dict[int, Proc] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            found[int(entry.name)] = parse_stat(Path(entry.path, "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
    return found


@dataclass(frozen=True)
class Machine:
    """The `cpu` line of /proc/stat: every core, in clock ticks."""

    busy: int  # user + nice + system + irq + softirq + steal (guest is inside user)
    total: int  # busy + idle + iowait
    cores: int


def parse_machine(text: str) -> Machine:
    lines = text.splitlines()
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in lines[0].split()[1:9])
    busy = user + nice + system + irq + softirq + steal
    cores = sum(1 for line in lines[1:] if line.startswith("cpu"))
    return Machine(busy=busy, total=busy + idle + iowait, cores=cores)


def read_machine(proc: Path = PROC) -> Machine:
    return parse_machine((proc / "stat").read_text())


def descendants(root: int, exclude: Iterable[int] = ()) -> Selector:
    """`root` and every process below it, not descending into the `exclude` pids (the
    bench process's other children: servers that are not the one measured)."""
    skip = set(exclude)

    def select(procs: Procs) -> set[int]:
        children: dict[int, list[int]] = {}
        for p in procs.values():
            children.setdefault(p.ppid, []).append(p.pid)
        found, todo = set(), [root] if root in procs else []
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo += [c for c in children.get(pid, ()) if c not in skip and c not in found]
        return found

    return select


def named(*comms: str) -> Selector:
    """Every process whose comm is one of `comms` (`postgres`, `redis-server`)."""
    return lambda procs: {p.pid for p in procs.values() if p.comm in comms}


def group_ticks(
    before: Procs, after: Procs, members_before: set[int], members_after: set[int]
) -> int:
    """CPU ticks a group spent between the two snapshots (see the module docstring)."""
    same = {p for p in members_before & members_after if before[p].started == after[p].started}
    gone = members_before - same
    new = members_after - same
    ticks = sum(
        after[p].ticks - before[p].ticks + after[p].child_ticks - before[p].child_ticks
        for p in same
    )
    ticks += sum(after[p].ticks + after[p].child_ticks for p in new)
    ticks -= sum(before[p].ticks + before[p].child_ticks for p in gone)
    return max(ticks, 0)


@dataclass(frozen=True)
class Snapshot:
    at: float
    machine: Machine
    procs: dict[int, Proc]


def snapshot(proc: Path = PROC) -> Snapshot | None:
    """The machine and every process, or None where there is no /proc."""
    try:
        machine = read_machine(proc)
        procs = read_procs(proc)
    except (OSError, ValueError, IndexError):
        return None
    return Snapshot(at=time.monotonic(), machine=machine, procs=procs)


class CpuSplit:
    """CPU per operation of each named group of processes over one window.

    `with CpuSplit(groups) as split: <the cell>` then `split.per_op(ops)`; for a window
    that opens and closes at given times while the cell runs (the service-level workers
    start their clock after importing Django), `split.over(start, end)` instead.
    Groups are claimed in order: a process counts in the first group that selects it.
    """

    def __init__(self, groups: Mapping[str, Selector], proc: Path = PROC) -> None:
        self.groups = dict(groups)
        self.proc = proc
        self.before: Snapshot | None = None
        self.after: Snapshot | None = None

    def __enter__(self) -> CpuSplit:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.before = snapshot(self.proc)

    def stop(self) -> None:
        self.after = snapshot(self.proc) if self.before else None

    def over(self, start: float, end: float) -> None:
        """Open the window at epoch time `start` and close it at `end`, blocking."""
        time.sleep(max(0.0, start - time.time()))
        self.start()
        time.sleep(max(0.0, end - time.time()))
        self.stop()

    def ticks(self) -> dict[str, int]:
        """Ticks per group, then `other`: the machine's busy ticks nobody claimed."""
        before, after = self.before, self.after
        if before is None or after is None:
            return {}
        out: dict[str, int] = {}
        claimed_before: set[int] = set()
        claimed_after: set[int] = set()
        for name, select in self.groups.items():
            members_before = select(before.procs) - claimed_before
            members_after = select(after.procs) - claimed_after
            claimed_before |= members_before
            claimed_after |= members_after
            out[name] = group_ticks(before.procs, after.procs, members_before, members_after)
        busy = after.machine.busy - before.machine.busy
        out[OTHER] = max(busy - sum(out.values()), 0)
        return out

    def per_op(self, ops: int) -> dict:
        """The cell's fields: `cpu_ms_per_op` per group, `machine_busy_share` of the
        window (1 = every core busy: the cell was CPU-bound), the window's length and
        the cores; empty without /proc or without a successful operation."""
        ticks = self.ticks()
        if not ticks or not ops or self.before is None or self.after is None:
            return {}
        tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
        total = self.after.machine.total - self.before.machine.total
        busy = self.after.machine.busy - self.before.machine.busy
        return {
            "cpu_ms_per_op": {name: round(t * tick_ms / ops, 3) for name, t in ticks.items()},
            "machine_busy_share": round(busy / total, 3) if total else None,
            "cpu_window_s": round(self.after.at - self.before.at, 3),
            "cpu_cores": self.after.machine.cores,
        }
