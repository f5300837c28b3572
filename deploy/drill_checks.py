"""The failover drill's checks (deploy/failover_drill.py): every acknowledged write is in
the ledger exactly once with what the client was told, no write is acknowledged while no
member holds the leader key, verify_ledger and the pre-crash checkpoint, the job queue.
Each check has a control that shows it can fail (verifier_self_check, the forged
checkpoint, gap_self_check)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

from drill_client import JOB_TYPE, PRICE, Op, manage, sql, wait_until


def verify(ops: list[Op], users: list[dict], primary_url: str) -> tuple[dict, list[str]]:
    findings: list[str] = []
    user_ids = [u["id"] for u in users]
    rows = sql(
        primary_url,
        "SELECT t.id, t.wallet_id, w.user_id, t.type, t.amount, t.status, t.reference_id,"
        " t.transfer_id, (SELECT j.id FROM jobs_job j WHERE j.transaction_id = t.id)"
        " FROM wallet_transaction t JOIN wallet_wallet w"
        " ON w.id = t.wallet_id WHERE w.user_id = ANY(%s)",
        (user_ids,),
    )
    by_id = {row[0]: row for row in rows}
    by_key: dict[tuple[int, str, str], list[tuple]] = {}
    for row in rows:
        if row[6]:
            by_key.setdefault((row[2], row[3], row[6]), []).append(row)

    writes = [op for op in ops if op.kind in ("spend", "transfer")]
    sent_keys = {(op.user_id, op.key) for op in writes}
    acked = [op for op in writes if op.outcome == "acked"]
    for op in acked:
        if op.kind == "spend":
            txn = op.result.get("transaction", {})
            row = by_id.get(txn.get("id"))
            if row is None or row[4] != txn.get("amount") or row[6] != op.key:
                findings.append(f"LOST acknowledged spend {op.key}: {txn}")
            elif row[8] is None or row[8] != op.result.get("job", {}).get("id"):
                findings.append(f"spend {op.key} without its job")
        else:
            debit, credit = op.result.get("debit", {}), op.result.get("credit", {})
            debit_row, credit_row = by_id.get(debit.get("id")), by_id.get(credit.get("id"))
            if debit_row is None or credit_row is None:
                findings.append(f"LOST acknowledged transfer {op.key}: {debit} / {credit}")
            elif debit_row[7] != credit_row[7] or debit_row[4] + credit_row[4] != 0:
                findings.append(f"transfer {op.key} legs do not pair: {debit_row} {credit_row}")
    # Exactly one effect per key; no effect of a key the clients were told was refused.
    refused = {(op.user_id, op.key) for op in writes if op.outcome.startswith("rejected")}
    for (user_id, txn_type, reference), found in by_key.items():
        if reference.startswith("drill-seed-") or txn_type == "transfer_in":
            continue
        if len(found) != 1:
            findings.append(f"key {reference} has {len(found)} effects")
        if (user_id, reference) in refused:
            findings.append(f"key {reference} was refused to the client but has an effect")
        if (user_id, reference) not in sent_keys:
            findings.append(f"ledger row with a key no client sent: {reference}")
    for row in rows:
        if row[3] in ("spend", "transfer_out") and not row[6]:
            findings.append(f"unexplained {row[3]} row {row[0]} (no reference)")
    unknown = [op.key for op in writes if op.outcome == "unknown"]
    for op in writes:
        if op.outcome == "unknown":
            continue
        if any(seen.startswith("500") for _, _, seen, _ in op.attempts):
            findings.append(f"{op.key} saw a 500: {op.attempts}")
    counts = {
        "writes_sent": len(writes),
        "acknowledged": len(acked),
        "acknowledged_after_retry": sum(len(op.attempts) > 1 for op in acked),
        "replayed_200": sum(op.status == 200 for op in acked),
        "refused": Counter(op.outcome for op in writes if op.outcome.startswith("rejected")),
        "outcome_unknown": len(unknown),
        "lost": sum("LOST" in f for f in findings),
        "ledger_rows_checked": len(rows),
    }
    if unknown:
        findings.append(f"{len(unknown)} writes never got an answer: {unknown[:5]}")
    return counts, findings


def timeline(ops: list[Op], origin: float, before: int, after: int) -> list[dict]:
    """Per half second from `before` seconds before `origin` to `after` seconds after it
    (times relative to `origin`): acknowledgements, and errors by what the client saw."""
    rows = []
    start, seconds = origin - before, before + after
    for step in range(seconds * 2):
        lo, hi = start + step / 2, start + (step + 1) / 2
        seen: Counter = Counter()
        for op in ops:
            for _, answered, what, _ in op.attempts:
                if lo <= answered < hi:
                    seen["ok" if what.startswith("20") else what] += 1
        rows.append({"t": round(lo - origin, 1), "ok": seen.pop("ok", 0), "errors": dict(seen)})
    return rows


def verifier_self_check(users: list[dict], primary_url: str) -> bool:
    """The check must be able to fail: an acknowledgement for a transaction that is not
    in the ledger has to be reported as lost."""
    fake = Op("drill-self-check", users[0]["id"], "spend", {"job_type": JOB_TYPE})
    fake.outcome, fake.status = "acked", 201
    fake.result = {"transaction": {"id": -1, "amount": -PRICE}, "job": {"id": -1}}
    _, found = verify([fake], users, primary_url)
    return any(finding.startswith("LOST acknowledged spend drill-self-check") for finding in found)


def failure_window(ops: list[Op], start: float, end: float) -> dict:
    """What the clients saw between two moments: every attempt that was not a success."""
    seen: Counter = Counter()
    for op in ops:
        for _, answered, what, _ in op.attempts:
            if start <= answered <= end and not what.startswith("20"):
                seen[what] += 1
    return dict(seen)


def first_ack_after(ops: list[Op], moment: float) -> float | None:
    """Seconds from `moment` until a write *sent* after it was acknowledged."""
    times = [
        answered
        for op in ops
        if op.kind in ("spend", "transfer")
        for sent, answered, what, _ in op.attempts
        if sent > moment and what in ("200", "201")
    ]
    return min(times) - moment if times else None


def take_checkpoint(taken: subprocess.CompletedProcess, path: Path, findings: list[str]) -> str:
    if taken.returncode != 0:
        findings.append(
            f"verify_ledger before the crash: exit {taken.returncode} {taken.stderr[-300:]}"
        )
        return "failed"
    body = json.loads(taken.stdout)
    if "checkpoint" not in body:
        findings.append("verify_ledger --json has no checkpoint (ops' checkpoints not merged)")
        return "unsupported"
    path.write_text(json.dumps(body["checkpoint"]))
    return f"{len(body['checkpoint'].get('chains', body['checkpoint']))} chains"


def check_checkpoint(path: Path, primary_url: str, findings: list[str]) -> str:
    if not path.exists():
        return "no checkpoint"
    checked = manage(
        "verify_ledger", "--no-progress", "--checkpoint", str(path), database_url=primary_url
    )
    if checked.returncode != 0:
        findings.append(f"the pre-crash checkpoint fails after failover: {checked.stdout[-500:]}")
        return "FAILED"
    # The control: the same checkpoint with one chain's head rewritten must be refused.
    forged = json.loads(path.read_text())
    chain = next(iter(forged["chains"]))
    forged["chains"][chain]["head"] = "0" * len(forged["chains"][chain]["head"])
    forged_path = path.with_name("checkpoint-forged.json")
    forged_path.write_text(json.dumps(forged))
    refused = manage(
        "verify_ledger", "--no-progress", "--checkpoint", str(forged_path), database_url=primary_url
    )
    if refused.returncode != 1:
        findings.append(f"a forged checkpoint was not refused (exit {refused.returncode})")
        return "passes (but a forged one was not refused)"
    return "passes (a forged one is refused)"


def wait_for_jobs(primary_url: str, user_ids: list[int]) -> dict[str, int]:
    """The workers must drain the queue on the new primary. A job a worker was running
    when the primary died stays `running` until JOBS_RUNNING_TIMEOUT_SECONDS passes
    without a heartbeat; then the sweep fails and refunds it (counted, not a finding)."""

    def left() -> dict[str, int]:
        rows = sql(
            primary_url,
            "SELECT status, count(*) FROM jobs_job WHERE user_id = ANY(%s)"
            " AND status IN ('pending', 'running') GROUP BY status",
            (user_ids,),
        )
        return dict(rows)

    wait_until(lambda: not left().get("pending") and not left().get("running"), 30, step=1.0)
    return left()


def acked_in_gap(ops: list[Op], gap: tuple[float, float]) -> dict[str, list[str]]:
    """Per app server, the writes sent after `gap` began (no member held the leader key:
    the leader was dead, frozen or demoted) and acknowledged before it ended (a new
    leader). Any of them was committed by a primary Patroni did not elect: split brain.
    A write sent before the gap may be acknowledged in it (its commit came first)."""
    start, end = gap
    found: dict[str, list[str]] = {}
    for op in ops:
        if op.kind not in ("spend", "transfer"):
            continue
        for sent, answered, what, server in op.attempts:
            if sent > start and answered < end and what in ("200", "201"):
                found.setdefault(server or "?", []).append(op.key)
    return found


def gap_self_check() -> bool:
    """The control: an acknowledgement sent and answered inside a gap must be reported."""
    fake = Op("drill-gap-check", 0, "spend", attempts=[(10.0, 10.5, "201", "app1")])
    return acked_in_gap([fake], (9.0, 11.0)) == {"app1": ["drill-gap-check"]}


def acks_by_server(ops: list[Op], marks: list[tuple[str, float]]) -> dict[str, dict[str, int]]:
    """Acknowledged write attempts per app server, per period between consecutive marks
    (label, time): what each app server wrote under each leader."""
    table: dict[str, dict[str, int]] = {}
    for op in ops:
        if op.kind not in ("spend", "transfer"):
            continue
        for _, answered, what, server in op.attempts:
            if what not in ("200", "201"):
                continue
            period = "before " + marks[0][0] if marks else "all"
            for label, moment in marks:
                if answered >= moment:
                    period = label
            row = table.setdefault(server or "?", {})
            row[period] = row.get(period, 0) + 1
    return table


def external_metrics_missing(rules_dir: Path, urls: list[str]) -> set[str]:
    """The Patroni and etcd metrics alerts.yml uses that the live cluster's /metrics do
    not expose (the suite checks them against a capture: external-metrics.txt)."""
    import re
    import urllib.request

    used = set(re.findall(r"\b(?:patroni|etcd)_\w+", (rules_dir / "alerts.yml").read_text()))
    live: set[str] = set()
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
            live.add(name)
            if kind == "histogram":
                live.update(name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return used - live
