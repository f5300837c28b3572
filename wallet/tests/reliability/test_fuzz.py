"""Schema truthfulness: schemathesis against a live server, every check, both data modes.

`schemathesis run` (the CLI, configured by the repository's schemathesis.toml) is pointed
at a real HTTP server (pytest-django's live server, on the test PostgreSQL database) and
generates requests for every operation of the drf-spectacular schema: in all its phases
(coverage, fuzzing, stateful), with positive data (valid by the schema: must not be
refused for a reason the schema does not state) and negative data (invalid: must be
refused), running every check — no 5xx, documented status codes, content types, headers
and bodies, positive acceptance, negative rejection, missing required headers,
unsupported methods, ignored authentication, and the custom check of
wallet/tests/reliability/schemathesis_hooks.py. It runs once as a plain user, once as a
staff member holding every permission of the apps (who reaches every staff operation)
and once as the payment service account (the only one whose deposits succeed), and
fails on any finding.
Afterwards every ledger invariant (and `verify_ledger`) must still hold.

Bounded by default (`--max-examples 5` per operation); the `stress` run sends many more.
The seed is random and printed, so a failure can be replayed (SCHEMATHESIS_SEED=…).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import PointPackage
from wallet.services.api_keys import issue_token
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.reliability.invariants import assert_all_invariants

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_velocity_limit")]


@pytest.fixture
def api_world(settings, stripe_local) -> dict[str, str]:
    """A user with history, a staff member, job types and point packages (active and
    retired), purchases served by the local Stripe."""
    settings.API_THROTTLE_RATE = "1000000/minute"
    settings.API_ANON_THROTTLE_RATE = "1000000/minute"
    # Staff holding every permission of the apps (so every staff operation is reached), given
    # directly: a transactional test's flush removes the groups the data migration made.
    finance = StaffFactory(username="fuzz-finance")
    finance.user_permissions.add(
        *Permission.objects.filter(content_type__app_label__in=["wallet", "jobs", "audit"])
    )
    # Staff never deposit, and nobody deals with their own wallet: the staff run meets
    # `permission_denied` on the deposit and `self_dealing_forbidden` on its own id, so
    # the payment service account has a run of its own, where deposits succeed.
    payer = payment_account()
    alice, bob = UserFactory(username="fuzz-alice"), UserFactory(username="fuzz-bob")
    JobTypeFactory(code="fortune", price=50)
    JobTypeFactory(code="retired", price=5, active=False)
    PointPackage.objects.create(code="starter", name="Starter", points=1000, price=999)
    PointPackage.objects.create(code="old", name="Old", points=10, price=100, active=False)
    for user in (finance, alice, bob):
        services.deposit(user=user, amount=500_000, reference_id=f"fuzz-{user.pk}", actor=payer)
    services.spend(user=alice, job_type="fortune")
    return {
        "user": issue_token(alice)[1],
        "staff": issue_token(finance)[1],
        "payments": issue_token(payer)[1],
    }


def _schemathesis_executable() -> str:
    beside_python = Path(sys.executable).with_name("schemathesis")
    return str(beside_python) if beside_python.exists() else shutil.which("schemathesis") or ""


def run_schemathesis(base_url: str, key: str, *, examples: int, report: Path) -> dict:
    """One `schemathesis run` with every check and both modes; returns its JSON report."""
    seed = int(os.environ.get("SCHEMATHESIS_SEED") or random.randrange(2**31))
    command = [
        _schemathesis_executable(),
        "run",
        f"{base_url}/api/schema/?format=json",
        "--checks=all",
        "--mode=all",
        f"--max-examples={examples}",
        "--workers=1",
        f"--seed={seed}",
        "--header",
        f"Authorization: Token {key}",
        "--report=json",
        f"--report-json-path={report}",
        "--no-color",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    finished = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert report.exists(), finished.stdout[-5000:] + finished.stderr[-5000:]
    result = json.loads(report.read_text())
    result["output"] = finished.stdout
    return result


def _figures(role: str, result: dict) -> str:
    cases = result["test_cases"]
    failures = sum(failure["count"] for failure in result["failures"])
    return (
        f"schemathesis [{role}] seed {result['seed']}: {result['operations']['tested']} "
        f"operations, {cases['generated']} cases, {failures} failures, "
        f"{len(result['errors'])} errors, {result['running_time']:.0f} s"
    )


def fuzz(live_server, api_world: dict, tmp_path: Path, examples: int) -> None:
    problems = []
    for role, key in api_world.items():
        result = run_schemathesis(
            live_server.url, key, examples=examples, report=tmp_path / f"{role}.json"
        )
        print(_figures(role, result))
        assert result["operations"]["tested"] >= 13, result["operations"]
        assert set(result["phases"]) >= {"coverage", "fuzzing"}
        if result["exit_code"] != 0 or result["failures"] or result["errors"]:
            problems.append(_figures(role, result) + "\n" + result["output"][-20000:])
    assert not problems, "\n\n".join(problems)
    assert_all_invariants()


def test_schemathesis_every_check_both_modes_as_user_and_staff(live_server, api_world, tmp_path):
    fuzz(live_server, api_world, tmp_path, examples=5)


@pytest.mark.stress
def test_schemathesis_stress(live_server, api_world, tmp_path):
    fuzz(live_server, api_world, tmp_path, examples=100)
