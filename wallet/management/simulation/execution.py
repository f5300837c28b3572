"""The simulation's child processes, and one planned operation through the money services.

Django is imported inside the functions: a spawned child must call
`configure_child_process` (which sets Django up on the parent's database) before
anything reads settings or models.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any

from wallet.management.simulation.plan import INACTIVE_JOB_TYPE, JOB_TYPES, USER_COUNT


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
    actor_id: int  # the staff member who refunds and adjusts
    job_codes: dict[str, str]  # symbolic → real code
    payer_id: int = 0  # the payment service account that deposits (no staff member may)

    def as_dict(self) -> dict:
        return self.__dict__.copy()

    def payer(self) -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.get(pk=self.payer_id)


_worker_context: RunContext | None = None


def init_worker(db_name: str, overrides: dict[str, Any], context: dict) -> None:
    global _worker_context
    configure_child_process(db_name, overrides)
    _worker_context = RunContext(**context)


def worker_execute(op: dict) -> dict:
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

    # Imported here: a spawned child sets Django up before any model loads.
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
            user=user_id, amount=op["amount"], reference_id=op["ref"], actor=ctx.payer()
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

    # Imported here: a spawned child sets Django up before any model loads.
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


# --- Scratch objects of one run -------------------------------------------------------


def create_scratch(tag: str) -> RunContext:
    """Scratch users and job types of one run; names carry the run's tag."""
    from django.contrib.auth import get_user_model

    # Imported here: a spawned child sets Django up before any model loads.
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
    payer = make_user("payments")
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
    return RunContext(user_ids, inactive, actor, codes, payer)


def retire_scratch(ctx: RunContext) -> None:
    """Scratch users cannot be deleted (their ledger rows are PROTECTed): deactivate them."""
    from django.contrib.auth import get_user_model

    # Imported here: a spawned child sets Django up before any model loads.
    from jobs.models import JobType

    get_user_model().objects.filter(
        pk__in=[*ctx.user_ids, ctx.inactive_user_id, ctx.actor_id, ctx.payer_id]
    ).update(is_active=False)
    JobType.objects.filter(code__in=ctx.job_codes.values()).update(active=False)
