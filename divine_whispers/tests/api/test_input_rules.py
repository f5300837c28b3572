"""The contract's input rules, at the HTTP level: UTF-8 bodies only, references without
surrounding spaces, one Idempotency-Key, X-Forwarded-For only through trusted proxies,
request-id hygiene, and the JSON error body for every error under /api/."""

from __future__ import annotations

import http.client
import json
import re
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from wallet.models import Transaction
from wallet.services.api_keys import issue_token
from wallet.tests.api_helpers import error_of
from wallet.tests.factories import UserFactory
from wallet.tests.helpers import ledger_snapshot

TRANSFER = "/api/v1/wallet/transfer"
SPEND = "/api/v1/wallet/spend"
FRESH_ID = re.compile(r"^[0-9a-f]{32}$")

pytestmark = pytest.mark.django_db


@pytest.fixture
def sender(user, fund):
    fund(user, 1000)
    return user


@pytest.fixture
def as_sender(sender, client_for):
    return client_for(sender)


def post_bytes(client, path: str, body: bytes, content_type: str, **headers):
    return client.generic("POST", path, body, content_type=content_type, **headers)


# --- UTF-8 only -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "charset, body",
    [
        # `+AGE-` is "a" in UTF-7: a UTF-7 reader sees "amount", a UTF-8 reader does not.
        ("utf-7", '{"to_user_id": %d, "+AGE-mount": 7}'),
        ("UTF-7", '{"to_user_id": %d, "amount": 7}'),
        ("utf-16", '{"to_user_id": %d, "amount": 7}'),
        ("utf-16le", '{"to_user_id": %d, "amount": 7}'),
        ("latin-1", '{"to_user_id": %d, "amount": 7}'),
        ("iso-8859-1", '{"to_user_id": %d, "amount": 7}'),
        ("ascii", '{"to_user_id": %d, "amount": 7}'),
        ("nonsense", '{"to_user_id": %d, "amount": 7}'),
    ],
)
def test_a_charset_other_than_utf8_is_415_and_nothing_moves(as_sender, other_user, charset, body):
    text = body % other_user.pk
    encoding = charset if charset not in ("nonsense",) else "utf-8"
    before = ledger_snapshot()
    response = post_bytes(
        as_sender, TRANSFER, text.encode(encoding), f"application/json; charset={charset}"
    )
    assert error_of(response) == (415, "unsupported_media_type")
    assert ledger_snapshot() == before


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"', "utf8"])
def test_utf8_named_any_way_is_accepted(as_sender, other_user, charset):
    body = json.dumps({"to_user_id": other_user.pk, "amount": 7}).encode()
    response = post_bytes(as_sender, TRANSFER, body, f"application/json; charset={charset}")
    assert response.status_code == 201, response.content


def test_no_charset_means_utf8(as_sender, other_user):
    body = json.dumps({"to_user_id": other_user.pk, "amount": 7, "description": "café ☕"})
    response = post_bytes(as_sender, TRANSFER, body.encode(), "application/json")
    assert response.status_code == 201
    assert response.json()["debit"]["description"] == "café ☕"


# --- References ---------------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["ref-1 ", " ref-1", "  ", "ref-1\t", " "])
def test_a_body_reference_with_surrounding_whitespace_is_refused(as_sender, other_user, reference):
    before = ledger_snapshot()
    response = as_sender.post(
        TRANSFER,
        {"to_user_id": other_user.pk, "amount": 5, "reference_id": reference},
        format="json",
    )
    assert error_of(response) == (400, "validation_error")
    assert "reference_id" in response.json()["error"]["details"]["fields"]
    assert ledger_snapshot() == before


def test_inner_spaces_are_part_of_a_reference(as_sender, other_user):
    body = {"to_user_id": other_user.pk, "amount": 5, "reference_id": "gift for bob"}
    assert as_sender.post(TRANSFER, body, format="json").status_code == 201


@pytest.mark.parametrize("key", ["a,b", "a, b", ",", "x" * 256, "caf\u00e9", "a\x7fb"])
def test_a_bad_idempotency_key_is_refused(as_sender, other_user, key):
    before = ledger_snapshot()
    response = as_sender.post(
        TRANSFER,
        {"to_user_id": other_user.pk, "amount": 5},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert error_of(response) == (400, "validation_error")
    assert ledger_snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_two_idempotency_key_headers_are_refused_over_real_http(live_server, fund):
    """Two headers reach the application joined by a comma; that is refused, not stored."""
    sender, recipient = UserFactory(), UserFactory()
    fund(sender, 100)
    _row, key = issue_token(sender)
    url = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"to_user_id": recipient.pk, "amount": 5}).encode()
    try:
        connection.putrequest("POST", TRANSFER)
        for name, value in [
            ("Authorization", f"Token {key}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Idempotency-Key", "first"),
            ("Idempotency-Key", "second"),
        ]:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        payload = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 400, payload
    assert payload["error"]["code"] == "validation_error"
    assert not Transaction.objects.filter(type="transfer_out").exists()


# --- Client address -------------------------------------------------------------------------


def _transfer_event_ip(client, recipient, **headers) -> str | None:
    response = client.post(
        TRANSFER, {"to_user_id": recipient.pk, "amount": 1}, format="json", **headers
    )
    assert response.status_code == 201, response.content
    return AuditEvent.objects.filter(action__startswith="wallet.transfer").latest("id").ip


def test_forwarded_for_is_ignored_without_trusted_proxies(as_sender, other_user):
    ip = _transfer_event_ip(
        as_sender, other_user, REMOTE_ADDR="10.9.8.7", HTTP_X_FORWARDED_FOR="203.0.113.66"
    )
    assert ip == "10.9.8.7"


def test_forwarded_for_is_read_through_exactly_the_trusted_proxies(as_sender, other_user, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # The client forged the first entry; our proxy appended the address it saw.
    headers = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.66, 198.51.100.4"}
    assert _transfer_event_ip(as_sender, other_user, **headers) == "198.51.100.4"
    settings.TRUSTED_PROXY_COUNT = 2
    assert _transfer_event_ip(as_sender, other_user, **headers) == "203.0.113.66"
    settings.TRUSTED_PROXY_COUNT = 3  # fewer entries than proxies: the socket address
    assert _transfer_event_ip(as_sender, other_user, **headers) == "10.0.0.2"


def test_the_anonymous_throttle_is_not_keyed_on_a_client_supplied_header(db, settings):
    settings.API_ANON_THROTTLE_RATE = "3/minute"
    client = APIClient()
    statuses = [
        client.get("/api/schema/", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_behind_a_trusted_proxy_the_anonymous_throttle_counts_per_client(db, settings):
    settings.API_ANON_THROTTLE_RATE = "2/minute"
    settings.TRUSTED_PROXY_COUNT = 1
    client = APIClient()

    def get(forwarded: str) -> int:
        return client.get("/api/schema/", HTTP_X_FORWARDED_FOR=forwarded).status_code

    assert [get("192.0.2.1"), get("192.0.2.1"), get("192.0.2.1")] == [200, 200, 429]
    assert get("192.0.2.2") == 200


# --- Request id -----------------------------------------------------------------------------


@pytest.mark.parametrize("incoming", ["abc", "A.b_c-9", "x" * 64])
def test_a_well_formed_request_id_is_kept(api_client, incoming):
    response = api_client.get("/api/v1/wallet/balance", HTTP_X_REQUEST_ID=incoming)
    assert response.status_code == 401
    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["", "x" * 65, "a b", "a:b", "a\\nb", "<script>", "é"])
def test_any_other_request_id_is_replaced_by_a_fresh_one(api_client, incoming):
    response = api_client.get("/api/v1/job-types", HTTP_X_REQUEST_ID=incoming)
    assert FRESH_ID.match(response["X-Request-ID"])


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/v1/no-such-thing"),
        ("get", "/api/schema/"),
        ("get", "/api/auth/login/"),
        ("get", "/admin/login/"),
        ("get", "/healthz"),
        ("delete", "/api/v1/wallet/balance"),
    ],
)
def test_every_response_carries_a_request_id(api_client, method, path):
    response = getattr(api_client, method)(path)
    assert FRESH_ID.match(response["X-Request-ID"])


# --- JSON errors everywhere under /api/ --------------------------------------------------


def test_a_session_post_without_csrf_token_is_a_json_403(client, user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(SPEND, {"job_type": "x"}, format="json")
    assert error_of(response) == (403, "permission_denied")


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/auth/logout/"),
        ("put", "/api/auth/login/"),
        ("get", "/api/v1/no-such-thing"),
        ("post", "/api/v1/wallet/balance"),
        ("get", "/api/v1/jobs/%0A"),
    ],
)
def test_framework_errors_under_api_are_the_json_body(api_client, method, path):
    response = getattr(api_client, method)(path)
    assert response.status_code >= 400
    assert response["Content-Type"] == "application/json"
    error_of(response)
