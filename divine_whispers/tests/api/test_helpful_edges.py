"""Errors and pages that tell a newcomer what to do next (issue 16), codes unchanged."""

from __future__ import annotations

import pytest

from wallet.tests.api_helpers import error_of
from wallet.tests.helpers import ledger_snapshot

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/wallet/balance"
SPEND = "/api/v1/wallet/spend"


def test_the_root_links_a_browser_to_the_api_docs_and_the_admin(client):
    response = client.get("/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'href="/api/docs/"' in page
    assert 'href="/admin/"' in page


def test_the_root_answers_a_script_with_json_links(client):
    response = client.get("/", HTTP_ACCEPT="*/*")

    assert response.status_code == 200
    links = response.json()["links"]
    assert links["api_docs"] == "/api/docs/"
    assert links["admin"] == "/admin/"
    for url in links.values():  # every link it gives leads somewhere
        assert client.get(url).status_code in (200, 302, 401), url


def test_the_root_changes_nothing_on_post(client):
    assert client.post("/").status_code == 405


def test_a_bearer_header_is_401_with_a_hint_to_use_token(api_client, user):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer 0123456789abcdef")

    response = api_client.get(BALANCE)

    assert error_of(response) == (401, "not_authenticated")
    message = response.json()["error"]["message"]
    assert "Authorization: Token <key>" in message
    assert "Bearer" in message


def test_no_credentials_keep_the_plain_401_message(api_client):
    response = api_client.get(BALANCE)

    assert error_of(response) == (401, "not_authenticated")
    assert "Token <key>" not in response.json()["error"]["message"]


def test_a_form_encoded_body_is_415_telling_to_send_json(user, client_for, job_type):
    before = ledger_snapshot()

    response = client_for(user).generic(
        "POST", SPEND, "job_type=fortune", content_type="application/x-www-form-urlencoded"
    )

    assert error_of(response) == (415, "unsupported_media_type")
    assert "Content-Type: application/json" in response.json()["error"]["message"]
    assert ledger_snapshot() == before


def test_a_trailing_slash_is_a_json_404_saying_to_drop_it(user, client_for):
    response = client_for(user).get(BALANCE + "/")

    assert error_of(response) == (404, "not_found")
    assert response["Content-Type"] == "application/json"
    message = response.json()["error"]["message"]
    assert "no trailing slash" in message
    assert message.endswith(BALANCE)


def test_a_missing_slash_on_the_schema_path_says_to_add_it(api_client):
    response = api_client.get("/api/schema")

    assert error_of(response) == (404, "not_found")
    assert response.json()["error"]["message"].endswith("/api/schema/")


def test_an_unknown_path_keeps_the_plain_404_message(api_client):
    response = api_client.get("/api/v1/no/such/thing/")

    assert error_of(response) == (404, "not_found")
    assert response.json()["error"]["message"] == "No such API endpoint."
