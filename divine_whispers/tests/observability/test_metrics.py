"""/metrics: who may read it, and that every family counts what it claims to.

Counters are process-wide and other tests move them too, so each test compares a scrape
before and after its own actions.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from audit.tests.helpers import verify
from divine_whispers.errors import InsufficientBalance, ValidationFailed
from divine_whispers.observability import metrics
from divine_whispers.tests.metrics_helpers import samples, total, value
from jobs.models import Job, JobStatus
from wallet import services
from wallet.tests.factories import payment_account

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token-0123456789"
OPS = "divine_whispers_operations_total"
POINTS = "divine_whispers_points_total"


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(response.content.decode())


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


# --- access ----------------------------------------------------------------------------


def test_without_credentials_is_refused_and_leaks_nothing(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert b"divine_whispers" not in response.content
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}x", "Bearer ", f"Token {TOKEN}", f"bearer{TOKEN}", "Basic abc"],
)
def test_wrong_credentials_are_refused(client, header):
    response = client.get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code == 403
    assert b"divine_whispers" not in response.content


def test_empty_token_setting_never_matches(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer x").status_code == 403


def test_right_token_reads_the_metrics(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert b"# TYPE divine_whispers_operations_total counter" in response.content
    assert response["Cache-Control"] == "no-store"


def test_allowed_address_or_network_reads_without_token(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "127.0.0.1"]
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.0.9").status_code == 401


def test_forwarded_for_does_not_open_the_door(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert response.status_code == 401


def test_post_is_not_allowed(client):
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


# --- money operations, counted around the services ----------------------------------------


def test_spend_outcomes_and_points_through_the_api(client, user, job_type, fund, client_for):
    fund(user, 120)
    alice = client_for(user)
    before = scrape(client)

    body = {"job_type": job_type.code, "reference_id": "m-1"}
    assert alice.post("/api/v1/wallet/spend", body, format="json").status_code == 201
    assert alice.post("/api/v1/wallet/spend", body, format="json").status_code == 200  # replay
    assert (
        alice.post("/api/v1/wallet/spend", {"job_type": job_type.code}, format="json").status_code
        == 201
    )
    refused = alice.post("/api/v1/wallet/spend", {"job_type": job_type.code}, format="json")
    assert refused.status_code == 402  # 20 points left, price 50

    after = scrape(client)
    delta = {
        outcome: value(after, OPS, operation="spend", outcome=outcome)
        - value(before, OPS, operation="spend", outcome=outcome)
        for outcome in ("ok", "replayed", "insufficient_balance")
    }
    assert delta == {"ok": 2, "replayed": 1, "insufficient_balance": 1}
    assert value(after, POINTS, type="spend") - value(before, POINTS, type="spend") == 100


def test_every_operation_is_counted_whoever_calls_it(
    client, user, other_user, staff, job_type, fund
):
    before = scrape(client)
    fund(user, 500)  # deposit
    spent, job = services.spend(user=user, job_type=job_type)
    services.refund(spend_txn=spent, amount=10, reason="late", actor=staff)
    services.transfer(sender=user, recipient=other_user, amount=30)
    services.adjust(user=other_user, amount=-5, reason="fix", actor=staff)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    services.refund_job(job_id=job.pk, reason="handler failed")
    with pytest.raises(InsufficientBalance):
        services.adjust(user=other_user, amount=-10_000, reason="too much", actor=staff)

    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    for operation in ("deposit", "spend", "refund", "transfer", "adjust", "job_refund"):
        assert delta(OPS, operation=operation, outcome="ok") == 1, operation
    assert delta(OPS, operation="adjust", outcome="insufficient_balance") == 1
    assert delta(POINTS, type="deposit") == 500
    assert delta(POINTS, type="refund") == 10 + 40  # partial, then the job's remaining 40
    assert delta(POINTS, type="transfer_out") == delta(POINTS, type="transfer_in") == 30
    assert delta(POINTS, type="adjustment") == 5


def test_validation_refusals_carry_their_code(client, user):
    before = scrape(client)
    with pytest.raises(ValidationFailed):
        services.deposit(user=user, amount=0, reference_id="x")
    after = scrape(client)
    assert value(after, OPS, operation="deposit", outcome="validation_error") == (
        value(before, OPS, operation="deposit", outcome="validation_error") + 1
    )


def test_large_amounts_are_counted(client, user, staff, settings):
    settings.WALLET_LARGE_AMOUNT_THRESHOLD = 1000
    before = scrape(client)
    services.deposit(user=user, amount=1000, reference_id="big", actor=payment_account())
    services.deposit(user=user, amount=999, reference_id="small", actor=payment_account())
    after = scrape(client)
    name = "divine_whispers_large_amount_events_total"
    assert value(after, name, type="deposit") - value(before, name, type="deposit") == 1


def test_a_cache_outage_is_counted(client, user, client_for, settings):
    """The cache guard's note_cache_error feeds the counter: a refused Redis, 3 requests."""
    from divine_whispers.tests.cache_servers import redis_cache_settings, refused_url

    before = value(scrape(client), "divine_whispers_cache_errors_total")
    settings.CACHE_RETRY_SECONDS = 0  # no breaker: every request asks the broken cache
    settings.CACHES = redis_cache_settings(refused_url())
    alice = client_for(user)
    assert {alice.get("/api/v1/wallet/balance").status_code for _ in range(3)} == {200}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert value(scrape(client), "divine_whispers_cache_errors_total") == before + 3


# --- database figures, read at scrape time --------------------------------------------------


def test_jobs_by_status_and_oldest_pending(client, user, job_type, fund):
    fund(user, 200)
    first = services.spend(user=user, job_type=job_type).job
    services.spend(user=user, job_type=job_type)
    done = services.spend(user=user, job_type=job_type).job
    Job.objects.filter(pk=done.pk).update(status=JobStatus.COMPLETED)
    Job.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=10))

    scraped = scrape(client)

    assert value(scraped, "divine_whispers_jobs", status="pending") == 2
    assert value(scraped, "divine_whispers_jobs", status="completed") == 1
    assert ("divine_whispers_jobs", frozenset({("status", "failed")})) in scraped  # 0, present
    assert 600 <= value(scraped, "divine_whispers_job_oldest_pending_seconds") < 700
    assert value(scraped, "divine_whispers_metrics_database_up") == 1


def test_no_pending_job_is_age_zero(client):
    assert value(scrape(client), "divine_whispers_job_oldest_pending_seconds") == 0


def test_last_verify_ledger_runs_are_reported(client, user, fund):
    fund(user, 10)
    assert "divine_whispers_ledger_verified_timestamp_seconds" not in {n for n, _ in scrape(client)}
    started = timezone.now().timestamp()
    assert verify().code == 0
    scraped = scrape(client)
    ok = value(scraped, "divine_whispers_ledger_verified_timestamp_seconds", result="ok")
    assert started - 1 <= ok <= timezone.now().timestamp()
    assert (
        value(scraped, "divine_whispers_ledger_verified_timestamp_seconds", result="findings") == 0
    )


# --- HTTP requests by route ------------------------------------------------------------------


def test_requests_are_counted_by_route_not_raw_path(client, user, client_for):
    alice = client_for(user)
    before = scrape(client)
    assert alice.get("/api/v1/jobs/987654").status_code == 404
    assert alice.get("/api/v1/jobs/123456").status_code == 404
    assert alice.get("/api/v1/wallet/balance").status_code == 200
    after = scrape(client)

    routes = {
        dict(items).get("route") for name, items in after if name.startswith("divine_whispers_http")
    }
    assert not any("987654" in (route or "") for route in routes)
    requests = "divine_whispers_http_requests_total"
    job_route = "api/v1/jobs/<pk>"
    assert job_route in routes, sorted(r for r in routes if r)
    labels = {"route": job_route, "method": "GET", "status": "404"}
    assert value(after, requests, **labels) - value(before, requests, **labels) == 2
    balance = {"route": "api/v1/wallet/balance", "method": "GET", "status": "200"}
    assert value(after, requests, **balance) - value(before, requests, **balance) == 1
    histogram = "divine_whispers_http_request_duration_seconds_count"
    assert value(after, histogram, **balance) - value(before, histogram, **balance) == 1


@override_settings(DEBUG=False)
def test_unmatched_paths_share_one_route(client):
    before = scrape(client)
    client.get("/no/such/page/1")
    client.get("/no/such/page/2")
    after = scrape(client)
    labels = {"route": "<unmatched>", "method": "GET", "status": "404"}
    requests = "divine_whispers_http_requests_total"
    assert value(after, requests, **labels) - value(before, requests, **labels) == 2
    assert total(after, requests) > total(before, requests)


def test_a_job_worker_serves_its_own_counters_on_a_port():
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics.serve_process_metrics(port)
    metrics.record_operation("job_refund", "ok")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert value(samples(text), OPS, operation="job_refund", outcome="ok") >= 1


def test_database_trouble_still_serves_the_process_counters(client, monkeypatch):
    from django.db import OperationalError

    def broken(self):
        raise OperationalError("connection lost")
        yield  # pragma: no cover

    monkeypatch.setattr(metrics.DatabaseCollector, "collect", broken)
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    text = response.content.decode()
    scraped = samples(text)
    assert value(scraped, "divine_whispers_metrics_database_up") == 0
    assert ("divine_whispers_jobs", frozenset({("status", "pending")})) not in scraped
    assert "# TYPE divine_whispers_operations_total counter" in text
