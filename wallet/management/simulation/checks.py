"""The simulation's checks: every outcome allowed, every reported effect in the ledger
(and nothing else there), every ledger invariant on the run's wallets, and `verify_ledger`.

Django is imported inside the functions, like the rest of the package (a spawned child
imports it before Django is set up).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from wallet.management.simulation.execution import RunContext
from wallet.management.simulation.plan import ALLOWED_CODES, MUST_FAIL


@dataclass
class Violation:
    what: str
    user_indexes: set[int] = field(default_factory=set)
    op_index: int | None = None  # the operation at fault, when there is one


def outcome_violations(plan: list[dict], outcomes: list[dict]) -> list[Violation]:
    found = []
    for op, outcome in zip(plan, outcomes, strict=True):
        status, kind = outcome["status"], op["kind"]
        bad = None
        if status == "crash":
            bad = f"op {op['i']} {kind} crashed: {outcome['detail']}"
        elif status == "refused" and outcome["code"] not in ALLOWED_CODES.get(kind, set()):
            bad = f"op {op['i']} {kind} refused with unexpected code {outcome['code']}"
        elif status in ("applied", "replayed") and kind in MUST_FAIL:
            bad = f"op {op['i']} {kind} should have been refused but was {status}"
        if bad:
            found.append(Violation(bad, {op["user"]}, op["i"]))
    return found


def reported_effect_violations(
    ctx: RunContext, plan: list[dict], outcomes: list[dict]
) -> list[Violation]:
    """What callers were told == what the ledger holds (no lost, no phantom effects)."""
    from wallet.models import Transaction

    told = set()
    replayed_to: dict[int, list[int]] = defaultdict(list)
    for op, outcome in zip(plan, outcomes, strict=True):
        if outcome["status"] == "applied":
            told.update(outcome["rows"])
        elif outcome["status"] == "replayed":
            for row in outcome["rows"]:
                replayed_to[row].append(op["i"])
    in_ledger = set(
        Transaction.objects.filter(user_id__in=ctx.user_ids).values_list("id", flat=True)
    )
    found = []
    for row in sorted(in_ledger - told):
        found.append(Violation(f"transaction {row} is in the ledger but no caller applied it"))
    for row in sorted(told - in_ledger):
        found.append(Violation(f"transaction {row} was reported applied but is not in the ledger"))
    for row, ops in sorted(replayed_to.items()):
        if row not in told:
            found.append(Violation(f"ops {ops} replayed transaction {row} that nobody applied"))
    return found


def ledger_violations(user_ids: Iterable[int]) -> list[Violation]:
    """Every ledger invariant, checked on the given users' wallets."""
    from django.db.models import Count, Sum

    # Imported here: a spawned child sets Django up before any model loads.
    from audit.models import AuditEvent

    # Imported here: a spawned child sets Django up before any model loads.
    from jobs.models import Job, JobStatus
    from wallet.models import Transaction, TransactionType, Wallet

    user_ids = list(user_ids)
    index = {uid: i for i, uid in enumerate(user_ids)}
    found: list[Violation] = []
    rows = Transaction.objects.filter(user_id__in=user_ids)
    sums = dict(
        rows.successful()
        .values("wallet_id")
        .annotate(t=Sum("amount"))
        .values_list("wallet_id", "t")
    )
    for wallet_id, user_id, balance in Wallet.objects.filter(user_id__in=user_ids).values_list(
        "id", "user_id", "balance"
    ):
        who = {index[user_id]}
        if balance < 0:
            found.append(Violation(f"wallet {wallet_id} is negative: {balance}", who))
        if balance != sums.get(wallet_id, 0):
            found.append(
                Violation(
                    f"wallet {wallet_id}: balance {balance} != ledger sum {sums.get(wallet_id, 0)}",
                    who,
                )
            )
    for pair in (
        rows.exclude(transfer_id=None)
        .values("transfer_id")
        .annotate(t=Sum("amount"), n=Count("id"))
    ):
        pair_rows = Transaction.objects.filter(transfer_id=pair["transfer_id"])
        if pair_rows.count() != 2 or sum(r.amount for r in pair_rows) != 0:
            who = {index[r.user_id] for r in pair_rows if r.user_id in index}
            found.append(Violation(f"transfer {pair['transfer_id']} does not net to zero", who))
    actions = [f"wallet.{t.value}" for t in TransactionType]
    events = dict(
        AuditEvent.objects.filter(transaction__user_id__in=user_ids, action__in=actions)
        .values("transaction_id")
        .annotate(n=Count("id"))
        .values_list("transaction_id", "n")
    )
    for txn_id, user_id in rows.values_list("id", "user_id"):
        if events.get(txn_id) != 1:
            found.append(
                Violation(
                    f"transaction {txn_id} has {events.get(txn_id, 0)} audit events",
                    {index[user_id]},
                )
            )
    spends = rows.filter(type=TransactionType.SPEND)
    refunded = dict(
        rows.filter(type=TransactionType.REFUND)
        .values("related_transaction_id")
        .annotate(t=Sum("amount"))
        .values_list("related_transaction_id", "t")
    )
    jobs = {job.transaction_id: job for job in Job.objects.filter(transaction__in=spends)}
    for spend in spends:
        who = {index[spend.user_id]}
        back = refunded.get(spend.pk, 0)
        if back > -spend.amount:
            found.append(
                Violation(f"spend {spend.pk} over-refunded: {back} > {-spend.amount}", who)
            )
        job = jobs.get(spend.pk)
        if job is None or job.points_used != -spend.amount:
            found.append(Violation(f"spend {spend.pk} has no matching job", who))
        elif back and job.status not in (JobStatus.REFUNDED, JobStatus.CANCELLED):
            found.append(Violation(f"job {job.pk} was refunded but is {job.status}", who))
        elif job.status == JobStatus.CANCELLED and back != -spend.amount:
            found.append(Violation(f"job {job.pk} cancelled but refunded {back}", who))
    return found


def verify_ledger_findings() -> list[Violation]:
    """The operators' integrity check (`manage.py verify_ledger`) over the whole database."""
    from wallet.verification import verify_ledger

    report = verify_ledger()
    return [Violation(f"verify_ledger: {finding.line()}") for finding in report.findings]


@dataclass
class SimulationReport:
    seed: int
    digest: str
    workers: int
    plan: list[dict]
    outcomes: list[dict]
    violations: list[Violation]
    tag: str

    @property
    def counts(self) -> Counter:
        return Counter((o["kind"], o["status"]) for o in self.outcomes)

    @property
    def codes(self) -> Counter:
        return Counter(o["code"] for o in self.outcomes if o["status"] in ("refused", "crash"))

    def ops_touching(self, violation: Violation, limit: int = 12) -> list[str]:
        """The last operations on the violation's wallets: up to the faulty one, if known,
        plus the few after it that may have run concurrently with it (one per worker)."""
        users, at_fault = violation.user_indexes, violation.op_index
        lines = []
        for op, outcome in zip(self.plan, self.outcomes, strict=True):
            if at_fault is not None and op["i"] > at_fault + self.workers:
                break
            if op["user"] in users or op.get("to") in users:
                shown = {k: v for k, v in op.items() if k != "i"}
                result = outcome["status"] + (f" {outcome['code']}" if "code" in outcome else "")
                mark = "  ← at fault" if op["i"] == at_fault else ""
                lines.append(f"    #{op['i']} {json.dumps(shown)} → {result}{mark}")
        return lines[-limit:]
