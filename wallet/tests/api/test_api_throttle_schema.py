"""DRF throttling (429 `throttled` with Retry-After) and the OpenAPI schema and docs."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

from wallet.tests.api_helpers import error_of
from wallet.tests.helpers import ledger_snapshot

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/wallet/balance"

CONTRACT_ENDPOINTS = {
    ("get", "/api/v1/wallet/balance"),
    ("get", "/api/v1/wallet/transactions"),
    ("get", "/api/v1/wallet/transactions/{id}"),
    ("post", "/api/v1/wallet/spend"),
    ("post", "/api/v1/wallet/transfer"),
    ("post", "/api/v1/wallet/deposit"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("post", "/api/v1/jobs/{id}/cancel"),
    ("get", "/api/v1/job-types"),
    ("put", "/api/v1/admin/users/{id}/points"),
    ("post", "/api/v1/admin/users/{id}/grants"),
    ("get", "/api/v1/admin/wallets"),
    ("post", "/api/v1/admin/transactions/{id}/refund"),
    ("get", "/api/v1/admin/approvals"),
    ("get", "/api/v1/admin/approvals/{id}"),
    ("post", "/api/v1/admin/approvals/{id}/approve"),
    ("post", "/api/v1/admin/approvals/{id}/reject"),
    ("get", "/api/v1/admin/reports/daily"),
    ("get", "/api/v1/packages"),
    ("post", "/api/v1/purchases"),
    ("get", "/api/v1/purchases"),
    ("get", "/api/v1/purchases/{id}"),
}
# Decisions are not idempotent writes: deciding twice is 409 approval_not_pending.
DECISIONS = {"/api/v1/admin/approvals/{id}/approve", "/api/v1/admin/approvals/{id}/reject"}


def test_a_user_beyond_the_rate_is_throttled_with_retry_after(user, client_for, settings, job_type):
    settings.API_THROTTLE_RATE = "3/minute"
    client = client_for(user)
    for _ in range(3):
        assert client.get(BALANCE).status_code == 200
    before = ledger_snapshot()

    response = client.post("/api/v1/wallet/spend", {"job_type": "fortune"}, format="json")

    assert error_of(response) == (429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["error"]["details"]["retry_after_seconds"] == int(
        response["Retry-After"]
    )
    assert ledger_snapshot() == before


def test_the_throttle_counts_per_user(user, other_user, client_for, settings):
    settings.API_THROTTLE_RATE = "2/minute"
    first, second = client_for(user), client_for(other_user)
    for _ in range(2):
        first.get(BALANCE)

    assert error_of(first.get(BALANCE)) == (429, "throttled")
    assert second.get(BALANCE).status_code == 200


def test_anonymous_clients_are_throttled_per_ip(api_client, settings):
    settings.API_ANON_THROTTLE_RATE = "2/minute"
    for _ in range(2):
        assert api_client.get("/api/schema/").status_code == 200

    response = api_client.get("/api/schema/")

    assert error_of(response) == (429, "throttled")
    assert response["Retry-After"]


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    assert "/api/v1/wallet/spend" in target.read_text()


def test_schema_lists_every_contract_endpoint_with_its_errors(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    listed = {
        (method, path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert listed == CONTRACT_ENDPOINTS
    for method, path in CONTRACT_ENDPOINTS:
        responses = schema["paths"][path][method]["responses"]
        assert {"401", "429", "503"} <= set(responses), (method, path)
        assert responses["401"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorEnvelope"
        }
        if method in {"post", "put"} and not path.endswith("/cancel") and path not in DECISIONS:
            assert {"200", "201", "400", "422"} <= set(responses), (method, path)
        if path in DECISIONS:
            assert {"400", "403", "404", "409"} <= set(responses), (method, path)
    points = schema["paths"]["/api/v1/admin/users/{id}/points"]["put"]["responses"]
    assert {"200", "201", "202", "402"} <= set(points)
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_swagger_ui_is_served_with_local_assets(api_client):
    response = api_client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn.jsdelivr.net" not in page
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def test_healthz_still_answers(api_client):
    response = api_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "payments": "test_mode",
    }


@pytest.mark.parametrize(("method", "path"), sorted(CONTRACT_ENDPOINTS))
def test_every_contract_endpoint_needs_authentication(api_client, method, path):
    before = ledger_snapshot()

    response = getattr(api_client, method)(path.replace("{id}", "1"), {}, format="json")

    assert error_of(response) == (401, "not_authenticated")
    assert ledger_snapshot() == before
