"""The short middleware path of API-key requests (divine_whispers/api/token_stack.py):
token requests skip sessions, messages and the JSON answers' CSP; session logins, CSRF
and every header the API promises still hold."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from divine_whispers.api.token_stack import is_token_request

BALANCE = "/api/v1/wallet/balance"
SPEND = "/api/v1/wallet/spend"


@pytest.mark.parametrize(
    "path, header, expected",
    [
        (BALANCE, "Token abc", True),
        (BALANCE, "token abc", True),
        (BALANCE, "TOKEN\tabc", True),
        (BALANCE, "Token", True),  # knox refuses it with a 401 on its own
        (BALANCE, "Tokenabc", False),
        (BALANCE, "Bearer abc", False),
        (BALANCE, "Basic dXNlcjpwYXNz", False),
        (BALANCE, "", False),
        (BALANCE, "Token\xa0abc", False),  # not a separator for DRF (bytes.split)
        ("/api/auth/login/", "Token abc", False),
        ("/api/docs/", "Token abc", False),
        ("/admin/", "Token abc", False),
    ],
)
def test_what_counts_as_a_token_request(path, header, expected):
    request = RequestFactory().get(path, HTTP_AUTHORIZATION=header) if header else None
    request = request or RequestFactory().get(path)
    assert is_token_request(request) is expected


def test_token_request_gets_no_session_and_keeps_the_api_headers(user, client_for):
    response = client_for(user).get(BALANCE)
    assert response.status_code == 200
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert "Content-Security-Policy" not in response  # JSON: no document to protect
    assert "no-store" in response["Cache-Control"]
    assert response["X-Request-ID"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_token_request_errors_keep_the_json_envelope_and_headers(db, api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    response = api_client.get(BALANCE)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"]
    assert "no-store" in response["Cache-Control"] and response["X-Request-ID"]


def test_session_login_still_serves_the_browsable_api(user):
    client = APIClient()
    client.force_login(user)
    assert client.get(BALANCE).status_code == 200
    page = client.get(BALANCE, HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" in page


def test_html_answer_of_a_token_request_keeps_its_csp(user, client_for):
    page = client_for(user).get(BALANCE, HTTP_ACCEPT="text/html")
    assert page["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" in page


def test_csrf_still_guards_session_authenticated_writes(user, job_type):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(SPEND, {"job_type": job_type.code}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_a_bad_key_never_falls_back_to_the_session(user):
    """A session cookie beside an invalid key: the key decides (401), the session is
    never read — so a forged header cannot ride on a logged-in browser's cookie."""
    client = APIClient()
    client.force_login(user)
    client.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    assert client.get(BALANCE).status_code == 401


@pytest.mark.parametrize("method, path", [("get", "/api/v1/no-such-thing"), ("post", BALANCE)])
def test_framework_errors_of_token_requests_are_json(user, client_for, method, path):
    """Answers no DRF view authenticated (unknown path, wrong method): no request.user
    from the session on the short path, and still the JSON body and the API headers."""
    response = getattr(client_for(user), method)(path)
    assert response.status_code in (404, 405)
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"]
    assert "no-store" in response["Cache-Control"] and response["X-Request-ID"]
