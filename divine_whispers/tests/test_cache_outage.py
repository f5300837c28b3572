"""The cache is never a single point of failure: with Redis refusing connections or
hanging, requests are served (rate limits fail open) within CACHE_TIMEOUT_MS, the outage
is logged once per interval and counted, and /healthz says `"cache": "down"` with 200.
"""

from __future__ import annotations

import logging
import time

import pytest
from django.db import DatabaseError

from divine_whispers import cache_guard, health
from divine_whispers.tests.cache_servers import hung_server, redis_cache_settings, refused_url

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/wallet/balance"


@pytest.fixture(params=["refused", "hung"])
def broken_redis(request, settings):
    """The default cache pointed at a Redis that refuses, or at one that hangs."""
    if request.param == "refused":
        settings.CACHES = redis_cache_settings(refused_url())
        yield request.param
        return
    with hung_server() as url:
        settings.CACHES = redis_cache_settings(url)
        yield request.param


def _timed(call):
    start = time.perf_counter()
    response = call()
    return response, time.perf_counter() - start


def test_requests_are_served_when_redis_is_broken(broken_redis, user, client_for, fund, job_type):
    fund(user, 100)
    client = client_for(user)

    balance, first_latency = _timed(lambda: client.get(BALANCE))
    spend = client.post("/api/v1/wallet/spend", {"job_type": "fortune"}, format="json")

    assert balance.status_code == 200
    assert spend.status_code == 201
    assert cache_guard.errors_total() == 1  # then the breaker skips the cache
    # The old failure: ~10 s then a 500. Now one connect/read timeout (100 ms) at most.
    assert first_latency < 2.0


def test_every_failed_call_is_counted_but_logged_once_per_interval(
    broken_redis, user, client_for, settings, caplog
):
    settings.CACHE_RETRY_SECONDS = 0  # no breaker: every request asks the broken cache
    client = client_for(user)

    with caplog.at_level(logging.WARNING, logger="divine_whispers.cache"):
        statuses = {client.get(BALANCE).status_code for _ in range(5)}

    assert statuses == {200}
    assert cache_guard.errors_total() == 5  # one throttle asks per authenticated request
    lines = [r for r in caplog.records if "cache unavailable" in r.getMessage()]
    assert len(lines) == 1


def test_healthz_reports_the_cache_down_but_stays_200(broken_redis, api_client):
    response = api_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "cache": "down",
        "payments": "test_mode",
    }


def test_healthz_is_503_with_the_same_shape_when_the_database_is_down(api_client, monkeypatch):
    def refuse() -> None:
        raise DatabaseError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", refuse)

    response = api_client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "down",
        "cache": "ok",
        "payments": "test_mode",
    }


def test_the_local_memory_fallback_still_throttles(user, client_for, settings):
    assert settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")
    settings.API_THROTTLE_RATE = "3/minute"
    client = client_for(user)

    statuses = [client.get(BALANCE).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]
    assert client.get(BALANCE).json()["error"]["code"] == "throttled"
