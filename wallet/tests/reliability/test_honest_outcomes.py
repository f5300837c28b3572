"""Honest outcomes over HTTP when the database connection is lost (contract: Failures).

For each money operation (spend, transfer, refund, adjust, deposit) the request's own
PostgreSQL backend is killed with `pg_terminate_backend` at one of three moments
(divine_whispers/faults.py crash points in divine_whispers/db.py):

* `atomic.begin`  — before the transaction's first statement: nothing can be applied,
  `503` with `details.outcome = "not_applied"`;
* `atomic.commit` — as the COMMIT is sent: the server cannot know, `503` with
  `details.outcome = "unknown"` and a message to retry with the same reference;
* `committed`     — after the COMMIT, before the answer: the answer needs no query (it is
  built from what the service returned), so it is the real `201`.

And the COMMIT may reach the server while its answer is lost (the connection's commit is
made to raise after committing): applied, yet the server cannot know — "unknown" again.

Every outcome is cross-checked by replaying the request with the same reference: after
"not_applied" the replay applies it (`201`), after an applied one it replays (`200`,
`Idempotent-Replayed: true`), after "unknown" either — and never a second effect.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.db import OperationalError, connection, connections

from divine_whispers.db import faults
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction
from wallet.tests.api_helpers import error_of, staff_with
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.helpers import ledger_snapshot
from wallet.tests.reliability.invariants import assert_all_invariants
from wallet.tests.reliability.test_db_faults import terminate_this_backend

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_velocity_limit")]

OPERATIONS = ["spend", "transfer", "refund", "adjust", "deposit"]
POINTS = {"atomic.begin": "not_applied", "atomic.commit": "unknown", "committed": "applied"}


@pytest.fixture
def world(settings, client_for):
    settings.API_THROTTLE_RATE = "100000/minute"
    JobTypeFactory(code="fortune", price=50)
    alice, bob = UserFactory(), UserFactory()
    for user in (alice, bob):
        services.deposit(
            user=user, amount=100_000, reference_id=f"seed-{user.pk}", actor=payment_account()
        )
    spend, job = services.spend(user=alice, job_type="fortune")
    return {
        "job": job,
        "alice": client_for(alice),
        "refunder": client_for(staff_with("wallet.refund_transaction", "outcome-refunder")),
        "finance": client_for(staff_with("wallet.adjust_points", "outcome-finance")),
        "payer": client_for(payment_account()),
        "alice_user": alice,
        "bob": bob,
        "spend": spend,
    }


def send(world: dict, operation: str, key: str):
    """The operation's request, with `key` as its Idempotency-Key."""
    headers = {"HTTP_IDEMPOTENCY_KEY": key}
    alice = world["alice_user"]
    requests = {
        "spend": ("alice", "post", "/api/v1/wallet/spend", {"job_type": "fortune"}),
        "transfer": (
            "alice",
            "post",
            "/api/v1/wallet/transfer",
            {"to_user_id": world["bob"].pk, "amount": 3},
        ),
        "refund": (
            "refunder",
            "post",
            f"/api/v1/admin/transactions/{world['spend'].pk}/refund",
            {"amount": 1, "reason": "outcome test"},
        ),
        "adjust": (
            "finance",
            "put",
            f"/api/v1/admin/users/{alice.pk}/points",
            {"amount": 2, "reason": "outcome test"},
        ),
        "deposit": ("payer", "post", "/api/v1/wallet/deposit", {"user_id": alice.pk, "amount": 4}),
        "cancel": ("alice", "post", f"/api/v1/jobs/{world['job'].pk}/cancel", {}),
    }
    client, method, path, body = requests[operation]
    return getattr(world[client], method)(path, body, format="json", **headers)


def killed_at(world: dict, operation: str, point: str, key: str):
    """Send the request with its backend killed at `point`; disarm; drop the dead connection."""
    faults.arm(point, terminate_this_backend)
    try:
        response = send(world, operation, key)
    finally:
        faults.arm(None)
    # A server closes the connection at the end of the request or health-checks it
    # before reuse (CONN_HEALTH_CHECKS); Django's test client skips that.
    connection.close()
    return response


def outcome_of(response) -> str:
    if response.status_code == 201:
        return "applied"
    assert error_of(response) == (503, "service_unavailable"), response.content
    details = response.json()["error"]["details"]
    assert details["request_id"]
    return details["outcome"]


def effect_exists(key: str) -> bool:
    return Transaction.objects.filter(reference_id=key).exists()


@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_lost_connection_answers_the_honest_outcome(world, operation, point):
    key = f"outcome-{operation}-{point}"
    before = ledger_snapshot()

    response = killed_at(world, operation, point, key)

    assert outcome_of(response) == POINTS[point]
    if POINTS[point] == "applied":
        assert effect_exists(key)
    else:
        assert ledger_snapshot() == before  # nothing partial persists
    if POINTS[point] == "unknown":
        message = response.json()["error"]["message"]
        assert "same reference" in message
        assert "nothing was changed" not in message
    assert_all_invariants()

    replay = send(world, operation, key)

    expected = 200 if POINTS[point] == "applied" else 201  # here "unknown" was not applied
    assert replay.status_code == expected, replay.content
    if expected == 200:
        assert replay["Idempotent-Replayed"] == "true"
    assert send(world, operation, key).status_code == 200
    assert_all_invariants()


def test_fifty_faulted_requests_each_outcome_confirmed_by_a_replay(world, capsys, monkeypatch):
    """Random operation and fault, 50 times: the figures of the closing note."""
    rng = random.Random(2026)
    table: Counter = Counter()
    for n in range(50):
        operation, fault = rng.choice(OPERATIONS), rng.choice([*POINTS, "answer-lost"])
        key = f"fifty-{n}"
        if fault == "answer-lost":
            response = commit_answer_lost(world, operation, key, monkeypatch)
        else:
            response = killed_at(world, operation, fault, key)
        outcome = outcome_of(response)
        was_applied = effect_exists(key)
        replay = send(world, operation, key)
        told = "replayed" if replay.status_code == 200 else "applied-now"
        assert replay.status_code in (200, 201), replay.content
        # The replay must agree with what the first answer said.
        assert (outcome, told) in {
            ("not_applied", "applied-now"),
            ("applied", "replayed"),
            ("unknown", "applied-now" if not was_applied else "replayed"),
        }
        assert Transaction.objects.filter(reference_id=key).exists()
        table[(operation, outcome, told)] += 1
    assert_all_invariants()
    with capsys.disabled():
        print("\noperation  outcome      replay")
        for (operation, outcome, told), count in sorted(table.items()):
            print(f"{operation:<10} {outcome:<12} {told:<12} {count}")
        totals = Counter()
        for (_, outcome, _), count in table.items():
            totals[outcome] += count
        print("totals:", dict(totals))
    assert set(totals) == {"not_applied", "unknown", "applied"}


@pytest.mark.parametrize("operation", [*OPERATIONS, "cancel"])
def test_no_query_runs_after_the_commit(world, operation):
    """Any query after COMMIT fails the request: the answer must not need one."""
    queries_after_commit: list[str] = []

    def refuse(execute, sql, params, many, context):
        queries_after_commit.append(sql)
        raise AssertionError(f"query after COMMIT: {sql}")

    def guard(point: str) -> None:
        connection.execute_wrappers.append(refuse)

    key = f"no-read-{operation}"
    first = 200 if operation == "cancel" else 201  # a cancel answers 200 (contract)
    for expected in (first, 200):  # the first call, then its replay
        faults.arm("committed", guard)
        try:
            response = send(world, operation, key)
        finally:
            faults.arm(None)
            if refuse in connection.execute_wrappers:
                connection.execute_wrappers.remove(refuse)
        assert response.status_code == expected, response.content
        assert queries_after_commit == []


def commit_answer_lost(world: dict, operation: str, key: str, monkeypatch):
    """Send the request with its COMMIT applied by the server but its answer lost."""
    wrapper_class = type(connections["default"])
    commit = wrapper_class._commit
    lost: list[bool] = []

    def commit_then_lose_the_answer(self) -> None:
        commit(self)
        if not lost:  # only this request's COMMIT
            lost.append(True)
            raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patch:
        patch.setattr(wrapper_class, "_commit", commit_then_lose_the_answer)
        return send(world, operation, key)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_commit_whose_answer_is_lost_is_unknown_and_the_replay_says_applied(
    world, operation, monkeypatch
):
    """The COMMIT reaches the server, then the connection drops before its answer: the
    change is applied, the server cannot know it, and says "unknown"; the replay tells."""
    key = f"lost-answer-{operation}"

    response = commit_answer_lost(world, operation, key, monkeypatch)

    assert outcome_of(response) == "unknown"
    assert effect_exists(key)  # it was applied
    replay = send(world, operation, key)
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    assert_all_invariants()
