"""Read routing (divine_whispers/db_routing.py): which reads may use the replica.

The end-to-end tests add a `replica` alias that is a second connection to the test
database (a primary: lag 0), so a query's alias shows where the router sent it; the
lag, the cache and the replica's availability are then varied one at a time. The run
against a real lagging standby is in the cluster drill (deploy/failover_drill.py).
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import resolve

from divine_whispers import cache_guard
from divine_whispers.db import routing as db_routing
from divine_whispers.db.routing import PRIMARY, REPLICA, ReplicaRouter, RequestRouting
from jobs.models import Job
from jobs.tests.factories import JobTypeFactory
from wallet.models import Transaction

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", REPLICA])

router = ReplicaRouter()


@pytest.fixture(autouse=True, scope="module")
def replica_alias(django_db_setup, django_db_blocker):
    """A `replica` alias on the test database for the duration of this module."""
    config = {**connections["default"].settings_dict, "TEST": {"MIRROR": "default"}}
    settings.DATABASES[REPLICA] = config
    connections.settings[REPLICA] = config
    yield
    with django_db_blocker.unblock():
        connections[REPLICA].close()
    del connections[REPLICA]
    connections.settings.pop(REPLICA, None)
    settings.DATABASES.pop(REPLICA, None)  # the same dict, unless Django copied it


@pytest.fixture
def settings_for_routing(settings):
    settings.REPLICA_MAX_LAG_SECONDS = 2.0
    settings.REPLICA_READ_YOUR_WRITES_SECONDS = 5.0
    return settings


class _Request:
    def __init__(self, user=None):
        self.user = user


def _route(model, state: RequestRouting | None) -> str:
    token = db_routing._current.set(state)
    try:
        return router.db_for_read(model)
    finally:
        db_routing._current.reset(token)


# --- which views may use the replica ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/wallet/transactions", True),
        ("GET", "/api/v1/wallet/transactions/1", True),
        ("GET", "/api/v1/jobs", True),
        ("GET", "/api/v1/jobs/1", True),
        ("GET", "/api/v1/job-types", True),
        ("GET", "/api/v1/admin/wallets", True),
        ("GET", "/api/v1/admin/reports/daily", True),
        ("GET", "/admin/wallet/transaction/", True),
        ("GET", "/api/v1/wallet/balance", False),  # a money read: primary
        ("POST", "/api/v1/wallet/spend", False),
        ("POST", "/api/v1/wallet/transfer", False),
        ("POST", "/api/v1/jobs/1/cancel", False),
        ("POST", "/api/v1/admin/transactions/1/refund", False),
        ("POST", "/api/v1/wallet/transactions", False),  # not a read, even on a list URL
        ("GET", "/admin/wallet/transaction/1/change/", False),  # a form that writes
        ("GET", "/healthz", False),
    ],
)
def test_only_read_only_endpoints_are_eligible(method, path, expected):
    assert db_routing.view_reads_from_replica(resolve(path).func, method) is expected


# --- the router's decision ----------------------------------------------------------


def test_eligible_ledger_reads_go_to_the_replica(settings_for_routing, user):
    state = RequestRouting(_Request(user), read_only=True)
    assert _route(Transaction, state) == REPLICA
    assert _route(Job, state) == REPLICA


def test_everything_else_reads_from_the_primary(settings_for_routing, user):
    assert _route(Transaction, None) == PRIMARY  # no request: commands, workers
    assert _route(Transaction, RequestRouting(_Request(user))) == PRIMARY  # not read-only
    # Auth (tokens, sessions, users): a revoked token must count on the next request.
    for model in apps.get_models():
        if model._meta.label_lower not in db_routing.REPLICA_MODELS:
            state = RequestRouting(_Request(user), read_only=True)
            assert _route(model, state) == PRIMARY, model
    assert _route(get_user_model(), RequestRouting(_Request(user), read_only=True)) == PRIMARY


def test_the_replica_models_are_ledger_reads_only():
    """Adding a model here is a decision: tokens, users, sessions must never be listed."""
    assert {
        "wallet.transaction",
        "wallet.wallet",
        "jobs.job",
        "jobs.jobtype",
        "audit.auditevent",
    } == db_routing.REPLICA_MODELS
    for label in db_routing.REPLICA_MODELS:
        apps.get_model(label)  # each one exists
    assert router.db_for_write(Transaction) == PRIMARY


def test_a_read_inside_a_write_reads_from_the_primary(settings_for_routing, user):
    with transaction.atomic():
        assert _route(Transaction, RequestRouting(_Request(user), read_only=True)) == PRIMARY


def test_a_lagging_replica_is_skipped(settings_for_routing, user, monkeypatch):
    monkeypatch.setattr(db_routing, "replica_lag_seconds", lambda: 2.5)
    state = RequestRouting(_Request(user), read_only=True)
    assert _route(Transaction, state) == PRIMARY
    assert state.reasons == ["replica_lagging"]
    monkeypatch.setattr(db_routing, "replica_lag_seconds", lambda: 1.9)
    assert _route(Transaction, RequestRouting(_Request(user), read_only=True)) == REPLICA


def test_an_unreachable_replica_is_skipped(settings_for_routing, user, monkeypatch):
    config = {**connections.settings[REPLICA], "PORT": "1", "OPTIONS": {"connect_timeout": 1}}
    connections[REPLICA].close()
    monkeypatch.setitem(connections[REPLICA].settings_dict, "PORT", config["PORT"])
    state = RequestRouting(_Request(user), read_only=True)
    assert _route(Transaction, state) == PRIMARY
    assert state.reasons == ["replica_unavailable"]


def test_the_lag_is_measured_once_per_request(settings_for_routing, user, monkeypatch):
    calls = []
    monkeypatch.setattr(db_routing, "replica_lag_seconds", lambda: calls.append(1) or 0.0)
    state = RequestRouting(_Request(user), read_only=True)
    assert {_route(Transaction, state) for _ in range(5)} == {REPLICA}
    assert len(calls) == 1


def test_a_user_who_just_wrote_reads_from_the_primary(settings_for_routing, user, other_user):
    db_routing.mark_recent_write(user.pk)
    assert _route(Transaction, RequestRouting(_Request(user), read_only=True)) == PRIMARY
    assert _route(Transaction, RequestRouting(_Request(other_user), read_only=True)) == REPLICA


def test_when_the_cache_cannot_answer_reads_go_to_the_primary(
    settings_for_routing, user, monkeypatch
):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")  # an OSError, as a refused socket raises

    monkeypatch.setattr(db_routing.cache, "get", broken)
    monkeypatch.setattr(db_routing.cache, "set", broken)
    cache_guard.reset()
    try:
        db_routing.mark_recent_write(user.pk)  # never fails the write
        assert _route(Transaction, RequestRouting(_Request(user), read_only=True)) == PRIMARY
        assert cache_guard.errors_total() >= 1
        # The breaker is open now: no cache call, still the primary.
        assert _route(Transaction, RequestRouting(_Request(user), read_only=True)) == PRIMARY
    finally:
        cache_guard.reset()


def test_the_replica_reports_no_lag_when_it_is_a_primary():
    """LAG_SQL on a server that is not in recovery (the test database) is 0."""
    assert db_routing.replica_lag_seconds() == 0.0


# --- through the HTTP API -------------------------------------------------------------


def _tables_queried(context: CaptureQueriesContext) -> str:
    return " ".join(query["sql"] for query in context.captured_queries)


def test_history_is_read_from_the_replica_and_own_writes_from_the_primary(
    settings_for_routing, client_for, user, fund
):
    JobTypeFactory(code="fortune", price=50)
    fund(user, 500)
    client = client_for(user)

    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        response = client.get("/api/v1/wallet/transactions")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1
    assert "wallet_transaction" in _tables_queried(on_replica)

    spent = client.post("/api/v1/wallet/spend", {"job_type": "fortune"}, format="json")
    assert spent.status_code == 201
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        history = client.get("/api/v1/wallet/transactions").json()["results"]
        jobs = client.get("/api/v1/jobs").json()["results"]
    assert on_replica.captured_queries == []  # the writer reads its write from the primary
    assert history[0]["id"] == spent.json()["transaction"]["id"]
    assert jobs[0]["id"] == spent.json()["job"]["id"]


def test_balance_and_writes_never_touch_the_replica(settings_for_routing, client_for, user, fund):
    JobTypeFactory(code="fortune", price=50)
    fund(user, 500)
    client = client_for(user)
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        assert client.get("/api/v1/wallet/balance").json()["balance"] == 500
        assert (
            client.post("/api/v1/wallet/spend", {"job_type": "fortune"}, format="json").status_code
            == 201
        )
    assert on_replica.captured_queries == []
