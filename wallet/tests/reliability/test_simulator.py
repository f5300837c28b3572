"""`manage.py simulate`: reproducible plans, a clean run, and a run that must find faults."""

from __future__ import annotations

import io
import itertools
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from divine_whispers.db import faults
from wallet.management.simulation import ALLOWED_CODES, build_plan, plan_digest


def test_the_same_seed_gives_the_same_operation_sequence():
    assert build_plan(42, 800) == build_plan(42, 800)
    assert plan_digest(build_plan(42, 800)) == plan_digest(build_plan(42, 800))
    assert build_plan(42, 800) != build_plan(43, 800)
    assert len(build_plan(42, 800)) == 800


def test_a_plan_mixes_every_kind_of_operation_duplicates_and_a_hot_wallet():
    plan = build_plan(7, 1500)
    assert {op["kind"] for op in plan} == set(ALLOWED_CODES)
    pairs = sum(1 for a, b in itertools.pairwise(plan) if a | {"i": 0} == b | {"i": 0})
    assert pairs >= 20  # identical operations back to back: they race in two workers
    hot = sum(1 for op in plan if op["user"] == 0 or op.get("to") == 0)
    assert hot > len(plan) / 2


def simulate(**options) -> str:
    out = io.StringIO()
    call_command("simulate", no_progress=True, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_simulate_runs_every_operation_from_several_processes_without_violation():
    output = simulate(seed=1234, ops=300, workers=3)
    assert "seed 1234" in output
    assert f"plan {plan_digest(build_plan(1234, 300))}" in output
    assert "300 operations" in output
    assert "invariants: OK, 0 violations" in output
    for kind in ("deposit", "spend", "transfer", "refund", "adjust", "cancel_job"):
        assert re.search(rf"^  {kind} +.*applied=\d+", output, re.M), kind
    # Same seed again: the same plan (its digest), whatever the interleaving was.
    again = simulate(seed=1234, ops=300, workers=2)
    assert f"plan {plan_digest(build_plan(1234, 300))}" in again


@pytest.mark.django_db(transaction=True)
def test_simulate_reports_violations_with_the_operations_behind_them(monkeypatch):
    """Without the row lock (test-only switch, inherited by the workers) it must fail."""
    monkeypatch.setenv(faults.NO_ROW_LOCKS_ENV, faults.NO_ROW_LOCKS_OPT_IN)
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"violation\(s\) \(seed 99\)"):
        call_command(
            "simulate", seed=99, ops=300, workers=4, no_progress=True, stdout=out, stderr=out
        )
    output = out.getvalue()
    assert "VIOLATION" in output
    assert "operations that led to it" in output


@pytest.mark.stress
@pytest.mark.django_db(transaction=True)
def test_simulate_stress():
    output = simulate(seed=20261125, ops=10_000, workers=4)
    assert "invariants: OK, 0 violations" in output
