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

The pieces: `plan` (the seeded operations and which outcomes each may have),
`execution` (child processes and one operation through the services), `checks` (the
invariants and the cross-check of reported effects), and `run_simulation` below,
which puts them together.

Django is imported inside functions throughout this package: `configure_child_process`
must run in a freshly spawned process before anything touches Django's settings or
models, so importing these modules must not.
"""

from __future__ import annotations

import multiprocessing
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from wallet.management.simulation.checks import (
    SimulationReport,
    Violation,
    ledger_violations,
    outcome_violations,
    reported_effect_violations,
    verify_ledger_findings,
)
from wallet.management.simulation.execution import (
    RunContext,
    configure_child_process,
    create_scratch,
    execute,
    init_worker,
    retire_scratch,
    worker_execute,
)
from wallet.management.simulation.plan import (
    ALLOWED_CODES,
    MUST_FAIL,
    build_plan,
    plan_digest,
)

__all__ = [
    "ALLOWED_CODES",
    "MUST_FAIL",
    "RunContext",
    "SimulationReport",
    "Violation",
    "build_plan",
    "configure_child_process",
    "create_scratch",
    "execute",
    "ledger_violations",
    "plan_digest",
    "retire_scratch",
    "run_simulation",
    "verify_ledger_findings",
]


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
        initializer=init_worker,
        initargs=(db_name, overrides or {}, ctx.as_dict()),
    ) as pool:
        results = pool.imap(worker_execute, plan, chunksize=1)
        outcomes = list(progress(results, len(plan)) if progress else results)
    violations = outcome_violations(plan, outcomes)
    violations += reported_effect_violations(ctx, plan, outcomes)
    violations += ledger_violations(ctx.user_ids)
    if check_verify_ledger:
        violations += verify_ledger_findings()
    retire_scratch(ctx)
    return SimulationReport(seed, plan_digest(plan), workers, plan, outcomes, violations, tag)
