"""Failover drill: a running cluster (deploy/cluster.sh: Patroni on etcd) under steady mixed
load through HAProxy loses its primary three ways, and must lose nothing it acknowledged.
The drill promotes nothing: it breaks things and measures what Patroni does.

Before the load, read routing: the replica (HAProxy's /replica check) replays 1 s, then
5 s late; every user reads its own write at once and the replica serves reads only
within REPLICA_MAX_LAG_SECONDS. Then three scenarios, each under its own load (8 client
threads, ~40 operations/s: 50 % spends, 30 % transfers, 20 % history reads):

  1 kill   at 4 s SIGKILL app server 1 (HAProxy must mark it DOWN; it restarts and must
           come back UP); then a `verify_ledger --json` checkpoint on the leader and
           SIGKILL of the leader's Patroni and PostgreSQL (a crashed host). Patroni on the
           synchronous standby takes the leader key once it expires; the crashed member's
           Patroni is started again (the host is back) and must rejoin as a standby by
           itself (pg_rewind). verify_ledger and the checkpoint on the new leader; then a
           planned switchover (patronictl) fails back.
  2 stop   the same with SIGSTOP (a frozen host, the stand-in for a network partition):
           a rogue client holding its own connection straight to the frozen primary keeps
           committing; after SIGCONT the old primary must not acknowledge one commit once
           the new leader exists (strict synchronous mode: its standby is gone) and must
           rejoin as a standby. Fail back.
  3 etcd   SIGKILL one etcd member (nothing may happen: no leader change, no failed
           write), then a second (no quorum: Patroni demotes the primary; writes answer
           503 not_applied), then start both again: service returns.

For every scenario: no write *sent* after the leader was lost and acknowledged before a
leader existed again, per app server (that would be a primary Patroni did not elect);
no moment where two members answered Patroni's /primary. At the end, on the leader:
every acknowledged write (201, or 200 replay) is in the ledger exactly once with what the
client was told, no key has two effects, every spend has its job, every transfer both
legs, verify_ledger is clean, the job queue drains. Controls show the checks can fail.
Prints one table, writes artifacts/failover-drill/ (report, client log), exits non-zero
on any finding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict

import drill_checks as checks
from drill_client import (
    INITIAL_POINTS,
    OUT,
    ROOT,
    STATE,
    Load,
    cluster,
    haproxy_server_status,
    log,
    manage,
    setup_users,
    wait_until,
)
from drill_patroni import FenceProbe, PatroniMonitor, is_sync_standby, members, read_routing_phase
from drill_table import print_table

DB = "divine_whispers"


class Drill:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.t0 = args, time.monotonic()
        self.base_url, self.leader_url = (
            os.environ["CLUSTER_URL"],
            os.environ["CLUSTER_PRIMARY_URL"],
        )
        self.monitor = PatroniMonitor(self.t0)
        self.findings: list[str] = []
        self.ops: list = []
        self.users: list[dict] = []
        self.report: dict = {"seed": args.seed, "users": args.users, "threads": args.threads}

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sleep_until(self, moment: float) -> None:
        time.sleep(max(0.0, moment - self.now()))

    def load(self, label: str, seed: int) -> Load:
        a = self.args
        load = Load(self.base_url, self.users, a.threads, a.rate, seed, label=label, t0=self.t0)
        load.start()
        return load

    def rel(self, value: float | None, origin: float) -> float | None:
        return None if value is None else round(value - origin, 2)

    # --- scenarios 1 and 2 -----------------------------------------------------------

    def member_failure(self, label: str, signal: str, seed: int) -> dict:
        load, fig = self.load(label, seed), {}
        if signal == "kill":
            self.app_kill(load, fig)
        old = cluster("leader")
        other = next(name for name in members() if name != old)
        checkpoint = STATE / f"checkpoint-{label}.json"
        taken = manage("verify_ledger", "--json", "--no-progress", database_url=self.leader_url)
        fig["checkpoint"] = checks.take_checkpoint(taken, checkpoint, self.findings)
        probe = None
        if signal == "stop":
            probe = FenceProbe(members()[old][0], DB, self.t0).start()
        time.sleep(2)
        log(f"[{label}] SIG{signal.upper()} the leader {old} (its Patroni and PostgreSQL)")
        cluster(f"member-{signal}", old)
        fault = self.now()
        new_at, new = self.monitor.wait_leader(after=fault, timeout=90, not_=old)
        if new is None:
            self.findings.append(f"[{label}] no new leader within 90 s")
            load.finish()
            return fig
        log(f"[{label}] {new} is the leader {new_at - fault:.2f} s after the fault")
        if new != other:
            self.findings.append(f"[{label}] unexpected leader {new}")
        fig["old_new"] = f"{old} → {new}"
        fig["new_leader_after"] = round(new_at - fault, 2)
        if signal == "stop":
            self.sleep_until(new_at + 3)
            log(f"[{label}] SIGCONT {old}")
            cluster("member-cont", old)
        else:
            log(f"[{label}] {old}'s host is back: its Patroni starts again")
            cluster("member-start", old)
        back = self.now()
        rejoined, leader = self.monitor.wait_settled(after=back, timeout=120)
        if leader == old:
            # The woken ex-leader took the key back (Patroni 3.0.2's etcd3 client,
            # deploy/cluster.sh): the elected leader was demoted and rewound instead.
            self.findings.append(
                f"[{label}] {old} took the leader key back from {new} after SIG{signal.upper()}"
                f" ({os.environ.get('CLUSTER_PATRONI_DCS')}): {new} was demoted"
            )
            fig["old_new"] += f" → {old} (key taken back)"
            old, new = new, old
        synced = rejoined is not None and wait_until(lambda: is_sync_standby(old), 60)
        fig["old_back_as_standby_after"] = self.rel(rejoined, fault)
        fig["old_back_after_restart"] = self.rel(rejoined, back)
        if rejoined is None or synced is None:
            self.findings.append(f"[{label}] {old} did not come back as a synchronous standby")
        fig["pg_rewind_runs"] = patroni_log_count(old, "pg_rewind exit code=0")
        if probe:
            probe.finish()  # before the failback makes its member the leader again
            # A commit sent before the freeze may be answered after SIGCONT (it committed,
            # synchronously, before the freeze): it must be on the new leader. One sent
            # after the freeze must never be acknowledged.
            fig["fence_acked_before"] = len(probe.acked(sent_before=fault))
            fig["fence_acked_after"] = len(probe.acked(sent_after=fault))
            fig["fence_lost"] = probe.lost_on(self.leader_url)
            fig["fence_attempts"] = dict(Counter(a[2] for a in probe.attempts))
            if fig["fence_acked_before"] == 0:
                self.findings.append(f"[{label}] the rogue client never committed (control)")
            if fig["fence_acked_after"] or fig["fence_lost"]:
                self.findings.append(
                    f"[{label}] the frozen primary acknowledged commits sent after the freeze"
                    f" ({fig['fence_acked_after']}) or ones the new leader lacks"
                    f" ({fig['fence_lost']})"
                )
        log(f"[{label}] verify_ledger and the pre-crash checkpoint on the new leader {new}")
        fig["verify_ledger"] = self.verify_ledger(label)
        fig["checkpoint_on_new_leader"] = checks.check_checkpoint(
            checkpoint, self.leader_url, self.findings
        )
        time.sleep(2)
        if cluster("leader") != fig["old_new"].split()[0]:  # the leader before the fault
            switched = self.switchover(label, current=new, target=old)
            fig["switchover_leader_after"] = self.report["switchovers"][label]
        else:
            switched = self.now()  # the key went back to the old leader: nothing to fail back
        load.finish()  # every operation is in load.ops once its retries are over
        self.ops += load.ops
        # What Patroni did: no acknowledged write without a leader, checked per app server.
        fig["gap"] = (round(fault, 2), round(new_at, 2))
        self.gap_check(label, fig, load.ops, (fault, new_at))
        first = checks.first_ack_after(load.ops, switched)
        fig["switchover_first_ack_after"] = first and round(first, 2)
        fig["switchover_clients_saw"] = checks.failure_window(
            load.ops, switched, switched + (first or 30)
        )
        marks = [(f"{old} leader", 0), (f"{new} leader", new_at), ("failback", switched)]
        self.common_figures(fig, load.ops, fault, marks)
        return fig

    def gap_check(self, label: str, fig: dict, ops: list, gap: tuple[float, float]) -> None:
        in_gap = checks.acked_in_gap(ops, gap)
        fig["acked_without_leader"] = sum(len(keys) for keys in in_gap.values())
        if in_gap:
            self.findings.append(f"[{label}] acknowledged while no member was leader: {in_gap}")

    def app_kill(self, load: Load, fig: dict) -> None:
        time.sleep(4)
        killed = self.now()
        log("SIGKILL app server 1")
        cluster("app-kill", "1")
        down = wait_until(lambda: haproxy_server_status().get("app1") == "DOWN", 15)
        if down is None:
            self.findings.append("HAProxy never marked the killed app server DOWN")
        cluster("app-start", "1")
        up = wait_until(lambda: haproxy_server_status().get("app1") == "UP", 30)
        if up is None:
            self.findings.append("the restarted app server never came back UP in HAProxy")
        fig["app_down_after"], fig["app_up_after"] = down and round(down, 2), up and round(up, 2)
        fig["app_kill_clients_saw"] = checks.failure_window(load.ops, killed, killed + (down or 5))

    def switchover(self, label: str, current: str, target: str) -> float:
        """deploy/cluster.sh switchover (PgBouncer PAUSE, patronictl switchover, RESUME);
        returns when it began."""
        log(f"[{label}] fail back: planned switchover {current} → {target}")
        began = self.now()
        try:
            cluster("switchover", target)
        except RuntimeError as exc:  # reported; the drill goes on to verify what it has
            self.findings.append(f"[{label}] switchover to {target} failed: {exc}")
        back_at, back = self.monitor.wait_leader(after=began, timeout=60, not_=current)
        self.report.setdefault("switchovers", {})[label] = self.rel(back_at, began)
        rejoined = self.monitor.wait_replica(current, after=began, timeout=90)
        synced = rejoined is not None and wait_until(lambda: is_sync_standby(current), 60)
        if back != target or synced is None:
            self.findings.append(
                f"[{label}] switchover to {target}: leader {back}, {current} rejoined: {rejoined}"
            )
        time.sleep(3)
        return began

    # --- scenario 3 --------------------------------------------------------------------

    def etcd_failure(self, label: str, seed: int) -> dict:
        load, fig = self.load(label, seed), {}
        time.sleep(3)
        before = cluster("leader")
        log(f"[{label}] SIGKILL etcd member 1 of 3")
        one = self.now()
        cluster("etcd-kill", "1")
        time.sleep(8)
        log(f"[{label}] SIGKILL etcd member 2: no quorum")
        majority = self.now()
        cluster("etcd-kill", "2")
        demoted = self.monitor.wait_no_leader(after=majority, timeout=60)
        fig["demoted_after"] = self.rel(demoted, majority)
        if demoted is None:
            self.findings.append(f"[{label}] the primary was not demoted without an etcd quorum")
            demoted = self.now()
        log(f"[{label}] demoted {fig['demoted_after']} s after quorum loss; etcd back in 6 s")
        self.sleep_until(demoted + 6)
        restored = self.now()
        cluster("etcd-start", "1")
        cluster("etcd-start", "2")
        back_at, leader = self.monitor.wait_leader(after=restored, timeout=90)
        if leader is None:
            self.findings.append(f"[{label}] no leader after etcd came back")
            back_at = self.now()
        fig["leader_back_after"] = self.rel(back_at, restored)
        fig["old_new"] = f"{before} → {leader}"
        other = next(name for name in members() if name != leader)
        rejoined = self.monitor.wait_replica(other, after=back_at - 1, timeout=90)
        if rejoined is None or not wait_until(lambda: is_sync_standby(other), 60):
            self.findings.append(f"[{label}] {other} is no synchronous standby after etcd is back")
        time.sleep(3)
        load.finish()  # every operation is in load.ops once its retries are over
        self.ops += load.ops
        writes = [op for op in load.ops if op.kind != "history"]
        fig["one_down_leader_changes"] = len(self.monitor.leader_changes(one, majority))
        fig["one_down_write_errors"] = checks.failure_window(writes, one, majority)
        fig["one_down_acked"] = sum(
            1 for op in writes for _, at, seen, _ in op.attempts
            if one <= at <= majority and seen in ("200", "201")
        )  # fmt: skip
        changed = fig["one_down_leader_changes"] or fig["one_down_write_errors"]
        if changed or not fig["one_down_acked"]:
            self.findings.append(f"[{label}] one etcd member down changed something: {fig}")
        first = checks.first_ack_after(load.ops, restored)
        fig["first_ack_after_etcd_back"] = first and round(first, 2)
        fig["clients_saw"] = checks.failure_window(load.ops, demoted, back_at + 1)
        if not any("(not_applied)" in seen for seen in fig["clients_saw"]):
            self.findings.append(f"[{label}] no write answered 503 not_applied during the outage")
        fig["gap"] = (round(demoted, 2), round(back_at, 2))
        self.gap_check(label, fig, load.ops, (demoted, back_at))
        marks = [("quorum", 0), ("no quorum", majority), ("etcd back", back_at)]
        self.common_figures(fig, load.ops, demoted, marks)
        return fig

    # --- shared ------------------------------------------------------------------------

    def common_figures(self, fig: dict, ops: list, fault: float, marks: list) -> None:
        writes = [op for op in ops if op.kind in ("spend", "transfer")]
        fig["writes_sent"] = len(writes)
        fig["acked"] = sum(op.outcome == "acked" for op in writes)
        fig["outcome_unknown"] = sum(op.outcome == "unknown" for op in writes)
        first = checks.first_ack_after(ops, fault)
        fig["first_ack_after"] = first and round(first, 2)
        fig.setdefault("clients_saw", checks.failure_window(ops, fault, fault + (first or 30)))
        fig["acks_by_app_server"] = checks.acks_by_server(ops, marks)
        fig["timeline"] = checks.timeline(ops, fault, 1, int((first or 10) + 2))
        if first is None:
            self.findings.append(f"no write acknowledged after the fault ({fig.get('old_new')})")

    def verify_ledger(self, label: str) -> str:
        verified = manage("verify_ledger", "--no-progress", database_url=self.leader_url)
        if verified.returncode != 0:
            self.findings.append(
                f"[{label}] verify_ledger: {verified.stdout[-400:]}{verified.stderr[-400:]}"
            )
            return f"exit {verified.returncode}"
        return "clean"

    def read_routing(self) -> None:
        setup_ops: list = []
        standby = os.environ["CLUSTER_STANDBY_URL"]
        routing = read_routing_phase(
            self.base_url, self.users, standby, self.args.rw_pairs, setup_ops
        )
        self.ops += setup_ops
        self.report["read_routing"] = routing
        for name, figures in routing.items():
            if figures["own_write_missing"] or figures["read_errors"]:
                self.findings.append(f"read routing ({name}): {figures}")
        if routing["within_bound"]["quiet_reads_served_by_replica_scans"] == 0:
            self.findings.append("read routing: the replica served no reads within the lag bound")
        if routing["over_bound"]["quiet_reads_served_by_replica_scans"] != 0:
            self.findings.append("read routing: the replica served reads over the lag bound")

    def run(self) -> int:
        a = self.args
        log(f"setting up {a.users} users with {INITIAL_POINTS} points each")
        self.users = setup_users(a.users)
        FenceProbe.create_table(self.leader_url)
        self.monitor.start()
        if not a.skip_read_routing:
            log("read routing: the replica replays 1 s late, then 5 s late")
            self.read_routing()
        scenarios = {}
        scenarios["1 SIGKILL primary"] = self.member_failure("kill", "kill", a.seed)
        scenarios["2 SIGSTOP primary"] = self.member_failure("stop", "stop", a.seed + 1)
        scenarios["3 etcd 1, then 2 of 3"] = self.etcd_failure("etcd", a.seed + 2)
        self.monitor.finish()
        self.report["scenarios"] = scenarios
        for moment, names in self.monitor.two_leaders():
            self.findings.append(f"two members answered /primary at t={moment}: {names}")
        self.report["two_leader_sweeps"] = len(self.monitor.two_leaders())
        self.report["sweeps"] = len(self.monitor.sweeps)
        self.final_checks()
        self.report["findings"] = self.findings
        (OUT / "report.json").write_text(json.dumps(self.report, indent=2, default=str))
        print_table(self.report)
        log(f"report and the client log of every operation: {OUT}/")
        return 1 if self.findings else 0

    def final_checks(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "client-log.json").write_text(
            json.dumps([asdict(op) for op in self.ops], default=str)
        )
        leader = cluster("leader")
        log(f"verifying every operation on the leader {leader}")
        user_ids = [u["id"] for u in self.users]
        self.report["jobs_left"] = checks.wait_for_jobs(self.leader_url, user_ids)
        if self.report["jobs_left"].get("pending"):
            self.findings.append(f"jobs still pending: {self.report['jobs_left']}")
        counts, more = checks.verify(self.ops, self.users, self.leader_url)
        self.findings += more
        self.report["operations"] = counts
        self.report["lost_by_scenario"] = Counter(
            f.split()[3].split("-")[1] for f in more if f.startswith("LOST")
        )
        self.report["verify_ledger_final"] = self.verify_ledger("final")
        self.report["controls"] = {
            "a fabricated lost write is reported": checks.verifier_self_check(
                self.users, self.leader_url
            ),
            "an ack inside a leaderless gap is reported": checks.gap_self_check(),
        }
        urls = [f"http://127.0.0.1:{rest}/metrics" for _, rest in members().values()]
        urls.append(f"http://{os.environ['CLUSTER_ETCD_ENDPOINTS'].split(',')[0]}/metrics")
        missing = checks.external_metrics_missing(ROOT / "deploy" / "prometheus", urls)
        self.report["alert_metrics_missing_live"] = sorted(missing)
        if missing:
            self.findings.append(f"alerts.yml uses metrics the live cluster lacks: {missing}")
        for name, ok in self.report["controls"].items():
            if not ok:
                self.findings.append(f"control failed: {name}")


def patroni_log_count(member: str, text: str) -> int:
    path = STATE / "log" / f"patroni-{member}.log"
    return path.read_text(errors="replace").count(text) if path.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=120)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=40.0, help="operations per second")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("DRILL_SEED", "7")))
    parser.add_argument("--rw-pairs", type=int, default=40)
    parser.add_argument("--skip-read-routing", action="store_true")
    return Drill(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
