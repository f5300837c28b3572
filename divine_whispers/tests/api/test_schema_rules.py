"""What the schema states, the server enforces (the schemathesis run checks it broadly;
these pin the rules added for it at the HTTP level)."""

from __future__ import annotations

import pytest

from wallet.tests.api_helpers import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api_client) -> dict:
    return api_client.get("/api/schema/?format=json").json()


def _request_schema(schema: dict, path: str, method: str) -> dict:
    ref = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]


def _parameter(schema: dict, path: str, name: str) -> dict:
    parameters = schema["paths"][path]["get"]["parameters"]
    return next(p["schema"] for p in parameters if p["name"] == name)


@pytest.mark.parametrize(
    "path, query",
    [
        ("/api/v1/wallet/transactions", "type="),
        ("/api/v1/wallet/transactions", "status="),
        ("/api/v1/jobs", "status="),
        ("/api/v1/wallet/transactions", "page_size=0"),
        ("/api/v1/wallet/transactions", "page_size=201"),
        ("/api/v1/wallet/transactions", "page_size=abc"),
        ("/api/v1/wallet/transactions", "page_size=-5"),
        ("/api/v1/wallet/transactions", "cursor=not-a-cursor"),
        ("/api/v1/jobs", "page_size=1.5"),
    ],
)
def test_query_values_the_schema_forbids_are_refused(user, client_for, path, query):
    response = client_for(user).get(f"{path}?{query}")
    assert error_of(response) == (400, "validation_error")


@pytest.mark.parametrize("query", ["page=0", "page=abc", "page_size=500", "ordering=", "username="])
def test_admin_list_refuses_what_the_schema_forbids(client_for, staff_in_group, query):
    response = client_for(staff_in_group).get(f"/api/v1/admin/wallets?{query}")
    assert error_of(response) == (400, "validation_error")


@pytest.fixture
def staff_in_group(db):
    from wallet.tests.api_helpers import staff_in

    return staff_in("support", "supporter")


def test_page_size_within_bounds_is_honoured(user, client_for, fund):
    for _ in range(3):
        fund(user, 5)
    response = client_for(user).get("/api/v1/wallet/transactions?page_size=2")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


def test_options_is_405_json(user, client_for):
    response = client_for(user).options("/api/v1/wallet/spend")
    assert error_of(response) == (405, "method_not_allowed")


def test_the_schema_states_the_servers_limits(schema, settings):
    transfer = _request_schema(schema, "/api/v1/wallet/transfer", "post")
    assert transfer["additionalProperties"] is False
    assert transfer["properties"]["amount"]["minimum"] == 1
    assert transfer["properties"]["amount"]["maximum"] == settings.WALLET_MAX_TRANSFER_AMOUNT
    assert transfer["properties"]["description"]["maxLength"] == 500
    reference = transfer["properties"]["reference_id"]
    assert (reference["minLength"], reference["maxLength"]) == (1, 255)
    adjust = _request_schema(schema, "/api/v1/admin/users/{id}/points", "put")
    limit = settings.WALLET_MAX_TRANSACTION_AMOUNT
    assert adjust["properties"]["amount"]["minimum"] == -limit
    assert adjust["properties"]["amount"]["maximum"] == limit
    assert adjust["properties"]["amount"]["not"] == {"enum": [0]}
    assert adjust["properties"]["reason"]["minLength"] == 1
    page_size = _parameter(schema, "/api/v1/wallet/transactions", "page_size")
    assert (page_size["minimum"], page_size["maximum"]) == (1, 200)
    spend = schema["paths"]["/api/v1/wallet/spend"]["post"]
    assert {"400", "401", "402", "403", "406", "409", "413", "415", "422", "429", "503"} <= set(
        spend["responses"]
    )
    key = next(p for p in spend["parameters"] if p["name"] == "Idempotency-Key")["schema"]
    assert "," not in key["pattern"].replace("\\-", "")  # the comma is outside every range


def test_the_amount_maximum_follows_the_setting(api_client, settings):
    settings.WALLET_MAX_TRANSFER_AMOUNT = 777
    schema = api_client.get("/api/schema/?format=json").json()
    transfer = _request_schema(schema, "/api/v1/wallet/transfer", "post")
    assert transfer["properties"]["amount"]["maximum"] == 777


def _job_type_codes(schema: dict) -> list[str]:
    field = _request_schema(schema, "/api/v1/wallet/spend", "post")["properties"]["job_type"]
    if "allOf" in field:  # drf-spectacular moves enums into a component
        name = field["allOf"][0]["$ref"].rsplit("/", 1)[-1]
        field = schema["components"]["schemas"][name]
    return field["enum"]


def test_job_type_codes_follow_the_table(api_client, job_type):
    from jobs.tests.factories import JobTypeFactory

    schema = api_client.get("/api/schema/?format=json").json()
    assert _job_type_codes(schema) == ["fortune"]
    JobTypeFactory(code="tarot", active=False)
    schema = api_client.get("/api/schema/?format=json").json()
    assert _job_type_codes(schema) == ["fortune", "tarot"]
