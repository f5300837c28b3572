"""The simulation's plan: a pure function of (seed, operation count).

The same seed always produces the same operations (`plan_digest` proves it). The plan
mixes every operation (deposit, spend, transfer, refund, adjust, job cancel), exact
duplicates sent back to back (they race in two processes), a reference reused with
other parameters, bad inputs, and a "hot" wallet that most operations touch.
`ALLOWED_CODES` and `MUST_FAIL` say which outcomes each kind of operation may have.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

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
