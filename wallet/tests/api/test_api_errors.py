"""The one exception handler: every domain error has its status, every DRF/Django error
the same JSON envelope, and nothing answers with Django's HTML or a bare 500."""

from __future__ import annotations

import inspect
import logging

import psycopg
import pytest
from django.db import InterfaceError, InternalError, OperationalError
from rest_framework import exceptions as drf

from divine_whispers import errors
from divine_whispers.api.exceptions import classify
from wallet import selectors
from wallet.tests.api_helpers import error_of, post_raw
from wallet.tests.helpers import ledger_snapshot

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/wallet/balance"
SPEND = "/api/v1/wallet/spend"

CONTRACT_STATUS = {
    "validation_error": 400,
    "amount_too_large": 400,
    "self_transfer": 400,
    "unknown_recipient": 400,
    "price_mismatch": 400,
    "not_refundable": 400,
    "refund_exceeds_original": 400,
    "inactive_job_type": 400,
    "insufficient_balance": 402,
    "not_found": 404,
    "request_in_progress": 409,
    "job_not_cancellable": 409,
    "idempotency_key_reused": 422,
    "velocity_limit_exceeded": 429,
    "self_approval_forbidden": 403,
    "approval_not_pending": 409,
    # Minting controls: a service's own refusal of an actor, and self-dealing.
    "permission_denied": 403,
    "self_dealing_forbidden": 403,
    # Admin confirmation pages only; the API never passes what a page showed.
    "stale_confirmation": 409,
    # Purchases (payment provider).
    "inactive_package": 400,
    "invalid_signature": 400,
    "wallet_in_debt": 402,
    "provider_unavailable": 503,
}


@pytest.fixture
def as_user(user, client_for):
    return client_for(user)


def domain_error_classes() -> list[type[errors.DomainError]]:
    return [
        klass
        for _, klass in inspect.getmembers(errors, inspect.isclass)
        if issubclass(klass, errors.DomainError) and klass is not errors.DomainError
    ]


def test_every_domain_error_class_has_the_contracts_status():
    classes = domain_error_classes()

    assert set(classes) == {k for k in classes if k.status is not None}
    assert {k.code for k in classes} == set(CONTRACT_STATUS)
    for klass in classes:
        status, body, _ = classify(klass())
        assert (status, body["error"]["code"]) == (CONTRACT_STATUS[klass.code], klass.code)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (drf.ParseError(), 400, "validation_error"),
        (drf.ValidationError({"x": ["bad"]}), 400, "validation_error"),
        (drf.NotAuthenticated(), 401, "not_authenticated"),
        (drf.AuthenticationFailed(), 401, "not_authenticated"),
        (drf.PermissionDenied(), 403, "permission_denied"),
        (drf.NotFound(), 404, "not_found"),
        (drf.MethodNotAllowed("DELETE"), 405, "method_not_allowed"),
        (drf.NotAcceptable(), 406, "not_acceptable"),
        (drf.UnsupportedMediaType("text/plain"), 415, "unsupported_media_type"),
        (drf.Throttled(wait=3), 429, "throttled"),
        (OperationalError("server closed the connection unexpectedly"), 503, "service_unavailable"),
        (InterfaceError("connection already closed"), 503, "service_unavailable"),
    ],
)
def test_framework_and_database_errors_map_to_the_contract(exc, status, code):
    got_status, body, _ = classify(exc)

    assert (got_status, body["error"]["code"]) == (status, code)
    assert set(body["error"]) == {"code", "message", "details"}


def test_a_failover_seen_as_an_internal_error_is_a_503_not_a_500():
    """Seen in the failover drill: psycopg's "received 2 results from command 'COMMIT'"
    (no SQLSTATE: the server ended the connection while answering, a primary shutting
    down) and 25006 (the connection reached a member that is no primary). Any other error
    the server sent stays a 500."""
    ended = InternalError("received 2 results from command 'COMMIT'")
    ended.__cause__ = psycopg.InternalError("received 2 results from command 'COMMIT'")
    not_primary = InternalError("cannot execute SELECT FOR UPDATE in a read-only transaction")
    not_primary.__cause__ = psycopg.errors.ReadOnlySqlTransaction("read-only transaction")
    other = InternalError("internal error")
    other.__cause__ = psycopg.errors.InternalError_("internal error")

    for failover in (ended, not_primary):
        status, body, _ = classify(failover)
        assert status == 503
        assert body["error"]["details"]["outcome"] in ("not_applied", "unknown")
    assert classify(other)[0] == 500


def test_an_unknown_url_under_api_is_a_json_404(as_user, api_client):
    for client in (as_user, api_client):
        for path in ("/api/v1/nope", "/api/v2/wallet/balance", "/api/", "/api/v1/wallet/balance/"):
            response = client.get(path)
            assert error_of(response) == (404, "not_found"), path
            assert response["Content-Type"] == "application/json"


def test_a_wrong_method_is_405(as_user):
    response = as_user.delete(BALANCE)

    assert error_of(response) == (405, "method_not_allowed")


def test_a_non_json_body_is_415_and_changes_nothing(as_user, job_type):
    before = ledger_snapshot()

    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = as_user.generic("POST", SPEND, "job_type=fortune", content_type=content_type)
        assert error_of(response) == (415, "unsupported_media_type"), content_type
    assert ledger_snapshot() == before


def test_malformed_json_is_400(as_user, job_type):
    before = ledger_snapshot()

    response = post_raw(as_user, SPEND, '{"job_type": "fortune",')

    assert error_of(response) == (400, "validation_error")
    assert ledger_snapshot() == before


def test_asking_for_xml_is_406(as_user):
    assert error_of(as_user.get(BALANCE, HTTP_ACCEPT="application/xml")) == (406, "not_acceptable")


def test_a_lost_database_connection_is_a_503(as_user, monkeypatch):
    def lost(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "balance_of_user", lost)

    response = as_user.get(BALANCE)

    assert error_of(response) == (503, "service_unavailable")
    assert response.json()["error"]["details"]["request_id"] == response["X-Request-ID"]


def test_an_unexpected_error_is_logged_with_the_request_id_and_answered_in_json(
    as_user, monkeypatch, caplog
):
    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "balance_of_user", broken)

    with caplog.at_level(logging.ERROR, logger="divine_whispers.api"):
        response = as_user.get(BALANCE, HTTP_X_REQUEST_ID="req-123")

    assert error_of(response) == (500, "internal_error")
    assert response["X-Request-ID"] == "req-123"
    assert response.json()["error"]["details"] == {"request_id": "req-123"}
    assert "req-123" in caplog.text
    assert "a bug" not in response.content.decode()


def test_validation_details_name_every_field(as_user, job_type):
    response = post_raw(as_user, SPEND, '{"amount": "10", "extra": 1}')

    assert error_of(response) == (400, "validation_error")
    fields = response.json()["error"]["details"]["fields"]
    assert set(fields) == {"extra"}  # unknown fields are reported first, before anything runs

    response = post_raw(as_user, SPEND, '{"amount": "10"}')
    assert set(response.json()["error"]["details"]["fields"]) == {"job_type", "amount"}


def test_every_response_carries_a_request_id(as_user, api_client):
    assert as_user.get(BALANCE)["X-Request-ID"]
    assert api_client.get(BALANCE)["X-Request-ID"]
    assert api_client.get("/api/v1/nope")["X-Request-ID"]


def test_errors_are_json_even_when_the_client_prefers_html(as_user):
    response = as_user.get("/api/v1/wallet/transactions/987654321", HTTP_ACCEPT="text/html")

    assert error_of(response) == (404, "not_found")
    assert response["Content-Type"] == "application/json"


def test_an_oversized_body_is_refused_without_a_500(as_user, job_type):
    before = ledger_snapshot()
    huge = '{"job_type": "fortune", "input": {"q": "' + "x" * 3_000_000 + '"}}'

    response = post_raw(as_user, SPEND, huge)

    status, code = error_of(response)
    assert (status, code) == (413, "request_too_large")
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"a":' * 50_000,
        "\x00",
        r'{"job_type": "\ud800"}',
        r'{"job_type": "fortune\u0000"}',
        r'{"job_type": "fortune", "input": {"q": "\u0000"}}',
        r'{"job_type": "fortune", "input": {"\udfff": 1}}',
        r'{"job_type": "fortune", "reference_id": "a\u0000"}',
        '{"job_type": "fortune", "input": ' + "[" * 900 + "]" * 900 + "}",
        '{"job_type": "fortune", "input": {"n": 1e400}}',
        '{"job_type": "fortune", "input": {"n": -1e400}}',
        '{"job_type": "fortune", "input": {"n": NaN}}',
        '{"job_type": "fortune", "job_type": "fortune"}',
        '{"job_type": "fortune", "input": {"a": 1, "a": 2}}',
    ],
)
def test_pathological_json_is_400_not_500(as_user, job_type, text):
    before = ledger_snapshot()

    response = post_raw(as_user, SPEND, text)

    assert error_of(response) == (400, "validation_error")
    assert ledger_snapshot() == before
