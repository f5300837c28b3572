"""A seeded, multi-process workload against the money services, and its invariant checks.

Used by `manage.py simulate` (operators run it on their own database) and by the
reliability test suite. The *plan* — the sequence of operations — is a pure function of
the seed and the operation count, so the same seed always produces the same operations
(`plan_digest` proves it); only their interleaving across the worker processes varies,
which is the point: the invariants must hold for every interleaving.

The plan mixes every operation (deposit, spend, transfer, refund, adjust, job cancel),
exact duplicates sent back to back (they race in two processes), a reference reused
with other parameters, bad inputs, and a "hot" wallet that most operations touch.
After the run every invariant is checked on the scratch wallets, and each worker's
report is cross-checked against the ledger: every effect a caller was told about is in
the ledger, and the ledger holds no effect nobody was told about.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import secrets
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Users of one run: index 0 is the hot wallet.
USER_COUNT = 6
HOT_USER = 0
HOT_SHARE = 0.45
JOB_TYPES = {"small": 7, "large": 40}  # symbolic code → price
INACTIVE_JOB_TYPE = "off"
BAD_AMOUNTS = [0, -5, 1.5, "10", True, None]

# Which outcomes each kind of operation may legitimately have. Anything else — another
# error code, or any exception that is not a domain error — is a violation.
ALLOWED_CODES: dict[str, set[str]] = {
    "deposit": set(),
    "deposit_reuse": {"idempotency_key_reused"},
    "spend": {"insufficient_balance", "velocity_limit_exceeded"},
    "spend_price_mismatch": {"price_mismatch"},
    "spend_inactive": {"inactive_job_type"},
    "spend_unknown_type": {"validation_error"},
    "transfer": {"insufficient_balance", "velocity_limit_exceeded"},
    "transfer_self": {"self_transfer"},
    "transfer_unknown_recipient": {"unknown_recipient"},
    "transfer_bad_amount": {"validation_error"},
    "transfer_too_large": {"amount_too_large"},
    "refund": {"refund_exceeds_original", "not_found"},
    "refund_too_much": {"refund_exceeds_original", "not_found"},
    "refund_not_spend": {"not_refundable"},
    "adjust": {"insufficient_balance"},
    "adjust_bad": {"validation_error"},
    "cancel_job": {"job_not_cancellable", "not_found"},
}
# Kinds whose success is itself a violation (they must be refused).
MUST_FAIL = {
    "deposit_reuse",
    "spend_price_mismatch",
    "spend_inactive",
    "spend_unknown_type",
    "transfer_self",
    "transfer_unknown_recipient",
    "transfer_bad_amount",
    "transfer_too_large",
    "refund_too_much",
    "refund_not_spend",
    "adjust_bad",
}


# --- The plan: a pure function of (seed, ops) ----------------------------------------


@dataclass
class _PlanState:
    rng: random.Random
    deposits: list[tuple[int, str, int]] = field(default_factory=list)  # user, ref, amount
    spends: list[tuple[int, str]] = field(default_factory=list)  # user, ref
    counter: int = 0

    def ref(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def user(self) -> int:
        if self.rng.random() < HOT_SHARE:
            return HOT_USER
        return self.rng.randrange(USER_COUNT)

    def other_user(self, than: int) -> int:
        return self.rng.choice([u for u in range(USER_COUNT) if u != than])


def _deposit(s: _PlanState) -> list[dict]:
    user, ref = s.user(), s.ref("pay")
    amount = s.rng.choice([s.rng.randint(20, 400), s.rng.randint(10_000, 12_000)])
    if amount >= 10_000 and s.rng.random() < 0.7:  # keep large amounts occasional
        amount = s.rng.randint(20, 400)
    s.deposits.append((user, ref, amount))
    return [{"kind": "deposit", "user": user, "amount": amount, "ref": ref}]


def _deposit_replay(s: _PlanState) -> list[dict]:
    if not s.deposits:
        return _deposit(s)
    user, ref, amount = s.rng.choice(s.deposits)
    return [{"kind": "deposit", "user": user, "amount": amount, "ref": ref}]


def _deposit_reuse(s: _PlanState) -> list[dict]:
    if not s.deposits:
        return _deposit(s)
    user, ref, amount = s.rng.choice(s.deposits)
    return [{"kind": "deposit_reuse", "user": user, "amount": amount + 1, "ref": ref}]


def _spend(s: _PlanState) -> list[dict]:
    user = s.user()
    ref = s.ref("buy") if s.rng.random() < 0.85 else None
    job_type = s.rng.choice(sorted(JOB_TYPES))
    op = {"kind": "spend", "user": user, "job_type": job_type, "ref": ref}
    if s.rng.random() < 0.3:
        op["price"] = JOB_TYPES[job_type]  # a client that sends the (right) amount
    if ref is not None:
        s.spends.append((user, ref))
    return [op]


def _spend_duplicate(s: _PlanState) -> list[dict]:
    """The same spend twice, back to back: two workers race with one reference."""
    op = _spend(s)[0]
    if op["ref"] is None:
        op["ref"] = s.ref("buy")
        s.spends.append((op["user"], op["ref"]))
    return [op, dict(op)]


def _spend_bad(s: _PlanState) -> list[dict]:
    user = s.user()
    variant = s.rng.choice(["price_mismatch", "inactive", "unknown_type"])
    op = {"kind": f"spend_{variant}", "user": user, "ref": s.ref("badbuy")}
    if variant == "price_mismatch":
        op.update(job_type="small", price=JOB_TYPES["small"] + 1)
    elif variant == "inactive":
        op.update(job_type=INACTIVE_JOB_TYPE)
    else:
        op.update(job_type="no-such-type")
    return [op]


def _transfer(s: _PlanState) -> list[dict]:
    sender = s.user()
    recipient = s.other_user(sender)
    if sender != HOT_USER and s.rng.random() < 0.5:
        recipient = HOT_USER
    ref = s.ref("send") if s.rng.random() < 0.7 else None
    amount = s.rng.randint(1, 120)
    return [{"kind": "transfer", "user": sender, "to": recipient, "amount": amount, "ref": ref}]


def _transfer_duplicate(s: _PlanState) -> list[dict]:
    op = _transfer(s)[0]
    op["ref"] = op["ref"] or s.ref("send")
    return [op, dict(op)]


def _transfer_bad(s: _PlanState) -> list[dict]:
    sender = s.user()
    variant = s.rng.choice(["self", "unknown_recipient", "bad_amount", "too_large"])
    op = {"kind": f"transfer_{variant}", "user": sender, "to": s.other_user(sender), "amount": 5}
    if variant == "self":
        op["to"] = sender
    elif variant == "unknown_recipient":
        op["to"] = "inactive"
    elif variant == "bad_amount":
        op["amount"] = s.rng.choice(BAD_AMOUNTS)
    else:
        op["amount"] = "over_limit"
    return [op]


def _refund(s: _PlanState) -> list[dict]:
    if not s.spends:
        return _spend(s)
    user, spend_ref = s.rng.choice(s.spends)
    amount = s.rng.choice([None, 1, 2, 3, 5])
    ref = s.ref("refund") if s.rng.random() < 0.5 else None
    return [{"kind": "refund", "user": user, "spend_ref": spend_ref, "amount": amount, "ref": ref}]


def _refund_bad(s: _PlanState) -> list[dict]:
    if s.deposits and s.rng.random() < 0.5:
        user, ref, _ = s.rng.choice(s.deposits)
        return [{"kind": "refund_not_spend", "user": user, "ref": ref}]
    if not s.spends:
        return _spend(s)
    user, spend_ref = s.rng.choice(s.spends)
    return [{"kind": "refund_too_much", "user": user, "spend_ref": spend_ref, "amount": 10_000}]


def _adjust(s: _PlanState) -> list[dict]:
    user = s.user()
    amount = s.rng.choice([s.rng.randint(1, 300), -s.rng.randint(1, 300)])
    ref = s.ref("adj") if s.rng.random() < 0.5 else None
    return [{"kind": "adjust", "user": user, "amount": amount, "ref": ref}]


def _adjust_bad(s: _PlanState) -> list[dict]:
    variant = s.rng.choice([{"amount": 0, "reason": "zero"}, {"amount": 5, "reason": "  "}])
    return [{"kind": "adjust_bad", "user": s.user(), **variant}]


def _cancel_job(s: _PlanState) -> list[dict]:
    if not s.spends:
        return _spend(s)
    user, spend_ref = s.rng.choice(s.spends)
    return [{"kind": "cancel_job", "user": user, "spend_ref": spend_ref}]


GENERATORS: list[tuple[Callable[[_PlanState], list[dict]], int]] = [
    (_deposit, 14),
    (_deposit_replay, 3),
    (_deposit_reuse, 2),
    (_spend, 22),
    (_spend_duplicate, 4),
    (_spend_bad, 3),
    (_transfer, 20),
    (_transfer_duplicate, 4),
    (_transfer_bad, 4),
    (_refund, 8),
    (_refund_bad, 2),
    (_adjust, 5),
    (_adjust_bad, 1),
    (_cancel_job, 3),
]


def build_plan(seed: int, ops: int) -> list[dict]:
    """Exactly `ops` operations, determined by the seed alone."""
    state = _PlanState(rng=random.Random(seed))
    makers, weights = zip(*GENERATORS, strict=True)
    plan: list[dict] = []
    while len(plan) < ops:
        maker = state.rng.choices(makers, weights=weights)[0]
        plan.extend(maker(state))
    plan = plan[:ops]
    for index, op in enumerate(plan):
        op["i"] = index
    return plan


def plan_digest(plan: list[dict]) -> str:
    canonical = json.dumps(plan, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --- Child processes -----------------------------------------------------------------


def configure_child_process(db_name: str, overrides: dict[str, Any] | None = None) -> None:
    """Set Django up in a spawned process, on the parent's database (e.g. a test database).

    The name is patched before the first query, so the child opens its own connection to
    exactly the database its parent uses.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "divine_whispers.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    settings.DATABASES["default"]["NAME"] = db_name
    connections["default"].settings_dict["NAME"] = db_name
    for name, value in (overrides or {}).items():
        setattr(settings, name, value)


@dataclass
class RunContext:
    """Database ids of one run's scratch objects, shared with the workers."""

    user_ids: list[int]
    inactive_user_id: int
    actor_id: int
    job_codes: dict[str, str]  # symbolic → real code

    def as_dict(self) -> dict:
        return self.__dict__.copy()


_worker_context: RunContext | None = None


def _init_worker(db_name: str, overrides: dict[str, Any], context: dict) -> None:
    global _worker_context
    configure_child_process(db_name, overrides)
    _worker_context = RunContext(**context)


def _worker_execute(op: dict) -> dict:
    assert _worker_context is not None
    return execute(op, _worker_context)


def _spend_id(user_id: int, ref: str) -> int | None:
    from wallet.models import Transaction, TransactionType

    return (
        Transaction.objects.filter(user_id=user_id, type=TransactionType.SPEND, reference_id=ref)
        .values_list("id", flat=True)
        .first()
    )


def _call(op: dict, ctx: RunContext) -> Any:
    """Run one planned operation through the services (raises their errors)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from jobs.models import Job, JobStatus
    from wallet import services
    from wallet.models import Transaction, TransactionType

    kind, user_id = op["kind"], ctx.user_ids[op["user"]]
    actor = get_user_model().objects.get(pk=ctx.actor_id)
    if kind in ("deposit_reuse", "refund_not_spend"):
        # These need their original deposit committed first; a committed row is
        # permanent, so checking for it first is race-free. Before it: skip.
        deposit_id = (
            Transaction.objects.filter(
                user_id=user_id, type=TransactionType.DEPOSIT, reference_id=op["ref"]
            )
            .values_list("id", flat=True)
            .first()
        )
        if deposit_id is None:
            return "skipped"
        if kind == "refund_not_spend":
            return services.refund(spend_txn=deposit_id, reason="sim: not a spend", actor=actor)
    if kind in ("deposit", "deposit_reuse"):
        return services.deposit(
            user=user_id, amount=op["amount"], reference_id=op["ref"], actor=actor
        )
    if kind.startswith("spend"):
        return services.spend(
            user=user_id,
            job_type=ctx.job_codes.get(op["job_type"], op["job_type"]),
            reference_id=op["ref"],
            expected_price=op.get("price"),
        )
    if kind.startswith("transfer"):
        recipient = ctx.inactive_user_id if op["to"] == "inactive" else ctx.user_ids[op["to"]]
        amount = op["amount"]
        if amount == "over_limit":
            amount = settings.WALLET_MAX_TRANSFER_AMOUNT + 1
        return services.transfer(
            sender=user_id, recipient=recipient, amount=amount, reference_id=op.get("ref")
        )
    if kind in ("refund", "refund_too_much", "cancel_job"):
        spend_id = _spend_id(user_id, op["spend_ref"])
        if spend_id is None:
            return "skipped"  # the spend was refused or has not run yet: nothing to refund
        if kind == "cancel_job":
            job_id = Job.objects.get(transaction_id=spend_id).pk
            return services.refund_job(
                job_id=job_id,
                reason="sim: cancelled by owner",
                final_status=JobStatus.CANCELLED,
                allowed_statuses=(JobStatus.PENDING,),
            )
        return services.refund(
            spend_txn=spend_id,
            amount=op["amount"],
            reason="sim: refund",
            actor=actor,
            reference_id=op.get("ref"),
        )
    if kind in ("adjust", "adjust_bad"):
        return services.adjust(
            user=user_id,
            amount=op["amount"],
            reason=op.get("reason", "sim: correction"),
            actor=actor,
            reference_id=op.get("ref"),
        )
    raise ValueError(f"unknown operation kind {kind!r}")


def _effects(result: Any) -> list[int]:
    rows = []
    for name in ("transaction", "debit", "credit"):
        row = getattr(result, name, None)
        if row is not None:
            rows.append(row.pk)
    return rows


def execute(op: dict, ctx: RunContext) -> dict:
    """One operation → its outcome; never raises (a crash is an outcome, and a violation)."""
    from django.db import connection

    from divine_whispers.errors import DomainError

    outcome = {"i": op["i"], "kind": op["kind"], "pid": os.getpid()}
    try:
        result = _call(op, ctx)
    except DomainError as exc:
        outcome.update(status="refused", code=exc.code)
    except Exception as exc:
        outcome.update(
            status="crash",
            code=type(exc).__name__,
            detail="".join(traceback.format_exception_only(exc)).strip()[:500],
        )
        connection.close()  # a broken connection must not poison the next operation
    else:
        if result == "skipped":
            outcome.update(status="skipped")
        else:
            outcome.update(
                status="replayed" if result.replayed else "applied", rows=_effects(result)
            )
    return outcome


# --- Setting up and checking a run -------------------------------------------------------


def create_scratch(tag: str) -> RunContext:
    """Scratch users and job types of one run; names carry the run's tag."""
    from django.contrib.auth import get_user_model

    from jobs.models import JobType

    user_model = get_user_model()

    def make_user(name: str, **extra: Any) -> int:
        user = user_model(username=f"sim-{tag}-{name}", **extra)
        user.set_unusable_password()
        user.save()
        return user.pk

    user_ids = [make_user(f"u{i}") for i in range(USER_COUNT)]
    inactive = make_user("gone", is_active=False)
    actor = make_user("finance", is_staff=True)
    codes = {}
    for symbol, price in [*JOB_TYPES.items(), (INACTIVE_JOB_TYPE, 5)]:
        code = f"sim-{tag}-{symbol}"
        JobType.objects.create(
            code=code,
            name=f"Simulation {symbol}",
            price=price,
            active=symbol != INACTIVE_JOB_TYPE,
        )
        codes[symbol] = code
    return RunContext(user_ids, inactive, actor, codes)


def retire_scratch(ctx: RunContext) -> None:
    """Scratch users cannot be deleted (their ledger rows are PROTECTed): deactivate them."""
    from django.contrib.auth import get_user_model

    from jobs.models import JobType

    get_user_model().objects.filter(
        pk__in=[*ctx.user_ids, ctx.inactive_user_id, ctx.actor_id]
    ).update(is_active=False)
    JobType.objects.filter(code__in=ctx.job_codes.values()).update(active=False)


@dataclass
class Violation:
    what: str
    user_indexes: set[int] = field(default_factory=set)
    op_index: int | None = None  # the operation at fault, when there is one


def _outcome_violations(plan: list[dict], outcomes: list[dict]) -> list[Violation]:
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


def _reported_effect_violations(
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

    from audit.models import AuditEvent
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
    from audit.verification import verify_ledger

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


def run_simulation(
    *,
    seed: int,
    ops: int,
    workers: int,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[Iterable[dict], int], Iterable[dict]] | None = None,
    check_verify_ledger: bool = True,
) -> SimulationReport:
    """Run the plan of `seed` from `workers` processes on the configured database."""
    from django.db import connection

    plan = build_plan(seed, ops)
    tag = f"{seed}-{secrets.token_hex(3)}"
    ctx = create_scratch(tag)
    db_name = connection.settings_dict["NAME"]
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(
        max(1, workers),
        initializer=_init_worker,
        initargs=(db_name, overrides or {}, ctx.as_dict()),
    ) as pool:
        results = pool.imap(_worker_execute, plan, chunksize=1)
        outcomes = list(progress(results, len(plan)) if progress else results)
    violations = _outcome_violations(plan, outcomes)
    violations += _reported_effect_violations(ctx, plan, outcomes)
    violations += ledger_violations(ctx.user_ids)
    if check_verify_ledger:
        violations += verify_ledger_findings()
    retire_scratch(ctx)
    return SimulationReport(seed, plan_digest(plan), workers, plan, outcomes, violations, tag)
