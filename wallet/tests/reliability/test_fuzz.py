"""Schema-driven fuzzing of the REST API with schemathesis.

Every operation of the drf-spectacular schema gets generated requests — valid ones
(`positive`) and ones that break the schema (`negative`) — sent authenticated (as a
superuser, who reaches every code path, and as a plain user), through the real WSGI
application on PostgreSQL. Every response must be:
  * no 5xx (`not_a_server_error`);
  * a status code the schema documents for the operation (`status_code_conformance`);
  * a body and content type matching the schema (`response_schema_conformance`,
    `content_type_conformance`).
Afterwards every ledger invariant (and `verify_ledger`) must hold.

Bounded by default (a few hundred requests); the `stress` run sends thousands.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.tests.factories import StaffFactory, UserFactory
from wallet.tests.reliability.invariants import assert_all_invariants
from wallet.tokens import issue_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_velocity_limit")]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SENT: Counter = Counter()  # requests sent, by test: the closing note's figures


@pytest.fixture
def api_world(settings):
    settings.API_THROTTLE_RATE = "1000000/minute"
    settings.API_ANON_THROTTLE_RATE = "1000000/minute"
    root = StaffFactory(username="fuzz-root", is_superuser=True)
    alice, bob = UserFactory(username="fuzz-alice"), UserFactory(username="fuzz-bob")
    JobTypeFactory(code="fortune", price=50)
    JobTypeFactory(code="retired", price=5, active=False)
    for user in (root, alice, bob):
        services.deposit(user=user, amount=500_000, reference_id=f"fuzz-{user.pk}", actor=root)
    spend, job = services.spend(user=alice, job_type="fortune")
    return {
        "tokens": {
            "superuser": issue_token(root)[1],
            "user": issue_token(alice)[1],
        },
        "ids": {"transaction": spend.pk, "job": job.pk, "user": bob.pk},
    }


def _schema():
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


def _pinned_id(operation, ids: dict) -> int | None:
    if "{id}" not in operation.path:
        return None
    if "/jobs/" in operation.path:
        return ids["job"]
    if "/users/" in operation.path:
        return ids["user"]
    return ids["transaction"]


def _runner(strategy, token: str, examples: int, label: str):
    """A hypothesis test sending `examples` generated requests authenticated by `token`."""

    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case) -> None:
        SENT[label] += 1
        headers = {"Authorization": f"Token {token}"}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    return run


def fuzz(api_world: dict, examples: int, label: str) -> dict[str, str]:
    """Fuzz every operation; returns {operation: first failure} (empty when all pass)."""
    failures: dict[str, str] = {}
    operations = [result.ok() for result in _schema().get_all_operations()]
    assert len(operations) >= 13
    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"
        variants = [(mode, None) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        pinned = _pinned_id(operation, api_world["ids"])
        if pinned is not None:  # also aim at an object that exists
            variants.append((GenerationMode.POSITIVE, {"id": pinned}))
        for mode, path_parameters in variants:
            for role, token in api_world["tokens"].items():
                strategy = operation.as_strategy(mode, path_parameters=path_parameters)
                try:
                    _runner(strategy, token, examples, label)()
                except Unsatisfiable:
                    continue  # no parameter or body to break: no negative case exists
                except (Exception, BaseExceptionGroup) as exc:  # record it, fuzz the rest
                    failures.setdefault(f"{name} [{mode.value}, {role}]", str(exc)[:3000])
    return failures


def test_fuzz_every_operation_no_5xx_and_responses_match_the_schema(api_world):
    failures = fuzz(api_world, examples=4, label="default")
    print(f"fuzz: {SENT['default']} requests")
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert_all_invariants()


@pytest.mark.stress
def test_fuzz_every_operation_stress(api_world):
    failures = fuzz(api_world, examples=60, label="stress")
    print(f"fuzz: {SENT['stress']} requests")
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert_all_invariants()
