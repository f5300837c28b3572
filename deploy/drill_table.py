"""The failover drill's closing table (deploy/failover_drill.py): one column per scenario,
one row per figure; "—" where a figure does not apply to that scenario."""

from __future__ import annotations


def _v(value) -> str:
    if value is None:
        return "never"
    if isinstance(value, float):
        return f"{value:.2f} s"
    if isinstance(value, dict):
        return (
            ", ".join(f"{n} × {k}" for k, n in sorted(value.items(), key=lambda i: -i[1]))
            or "nothing"
        )
    return str(value)


ROWS = [
    ("leader", "old_new"),
    ("writes sent / acknowledged", None),
    ("acknowledged writes lost", "lost"),
    ("fault → new leader (Patroni)", "new_leader_after"),
    ("etcd: leader changes / write errors, 1 of 3 down", None),
    ("etcd: no quorum → primary demoted", "demoted_after"),
    ("fault (etcd: demotion) → first acknowledged write", "first_ack_after"),
    ("clients saw until then", "clients_saw"),
    ("etcd back → leader / first acknowledged write", None),
    ("old primary back as standby (after fault / restart)", None),
    ("pg_rewind runs (old primary's Patroni log)", "pg_rewind_runs"),
    ("writes acked with no leader (all app servers)", "acked_without_leader"),
    ("rogue direct commits acked: sent before / after freeze", None),
    ("verify_ledger / checkpoint on the new leader", None),
    ("failback switchover → leader / first write", None),
    ("write outcome never known to a client", "outcome_unknown"),
    ("app server SIGKILL: DOWN / UP again after", None),
    ("app server SIGKILL: clients saw", "app_kill_clients_saw"),
]


def _row(key: str | None, label: str, fig: dict, lost: int) -> str:
    if key == "lost":
        return str(lost)
    if key:
        return _v(fig.get(key)) if key in fig else "—"
    if label.startswith("writes sent"):
        return f"{fig.get('writes_sent')} / {fig.get('acked')}"
    if label.startswith("etcd: leader changes"):
        if "one_down_leader_changes" not in fig:
            return "—"
        return f"{fig['one_down_leader_changes']} / {_v(fig['one_down_write_errors'])}"
    if label.startswith("etcd back"):
        if "leader_back_after" not in fig:
            return "—"
        return f"{_v(fig['leader_back_after'])} / {_v(fig['first_ack_after_etcd_back'])}"
    if label.startswith("old primary back"):
        if "old_back_as_standby_after" not in fig:
            return "—"
        return f"{_v(fig['old_back_as_standby_after'])} / {_v(fig['old_back_after_restart'])}"
    if label.startswith("rogue"):
        if "fence_acked_after" not in fig:
            return "—"
        before, after, lost = fig["fence_acked_before"], fig["fence_acked_after"], fig["fence_lost"]
        return f"{before} (missing {len(lost)}) / {after}"
    if label.startswith("verify_ledger"):
        return (
            f"{fig['verify_ledger']} / {fig['checkpoint_on_new_leader']}"
            if "verify_ledger" in fig
            else "—"
        )
    if label.startswith("app server SIGKILL: DOWN"):
        if "app_down_after" not in fig:
            return "—"
        return f"{_v(fig['app_down_after'])} / {_v(fig['app_up_after'])}"
    if label.startswith("failback"):
        if "switchover_leader_after" not in fig:
            return "—"
        return f"{_v(fig['switchover_leader_after'])} / {_v(fig['switchover_first_ack_after'])}"
    return "?"


def print_table(report: dict) -> None:
    scenarios = report["scenarios"]
    lost = report.get("lost_by_scenario", {})
    short = {
        "1 SIGKILL primary": "kill",
        "2 SIGSTOP primary": "stop",
        "3 etcd 1, then 2 of 3": "etcd",
    }
    for name, fig in scenarios.items():
        print(f"\n=== {name}: answers around the fault (t = 0), per half second ===")
        for row in fig.get("timeline", []):
            print(
                f"t={row['t']:+5.1f} s  acknowledged {row['ok']:3d}  errors {row['errors'] or ''}"
            )
        print(f"acknowledged writes per app server: {fig.get('acks_by_app_server')}")
    width = 52
    print("\n=== failover drill: what Patroni did ===")
    print(f"{'':<{width}}" + "".join(f" | {name:<24}" for name in scenarios))
    for label, key in ROWS:
        cells = [_row(key, label, fig, lost.get(short[name], 0)) for name, fig in scenarios.items()]
        print(f"{label:<{width}}" + "".join(f" | {cell:<24}" for cell in cells))
    ops, controls = report["operations"], report["controls"]
    print(
        f"\nall scenarios: {ops['writes_sent']} writes, {ops['acknowledged']} acknowledged, "
        f"{ops['lost']} lost, {ops['ledger_rows_checked']} ledger rows checked; "
        f"verify_ledger at the end: {report['verify_ledger_final']}; "
        f"two members answering /primary: {report['two_leader_sweeps']} of {report['sweeps']}"
    )
    print(f"read routing: {report.get('read_routing', 'skipped')}")
    print(f"controls: {controls}; jobs left: {report['jobs_left'] or 'none'}")
    print(f"findings: {len(report['findings'])}")
    for finding in report["findings"][:30]:
        print(f"  - {finding}")
    print("RESULT:", "FAIL" if report["findings"] else "PASS")
