"""Input edges an outside probe found accepted: a charset named twice, a cursor the server
never issued, a query id written as a decimal; and the Permissions-Policy header."""

from __future__ import annotations

import json

import pytest

from divine_whispers.http_headers import PERMISSIONS_POLICY
from wallet.tests.api_helpers import error_of
from wallet.tests.helpers import ledger_snapshot

TRANSFER = "/api/v1/wallet/transfer"
HISTORY = "/api/v1/wallet/transactions"

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-7; charset=utf-8",
        "application/json; charset=utf-8; charset=utf-8",
        "application/json; charset=utf-8; CHARSET=utf-7",
    ],
)
def test_a_charset_named_twice_is_415_and_nothing_moves(
    client_for, user, other_user, fund, content_type
):
    fund(user, 100)
    before = ledger_snapshot()
    body = json.dumps({"to_user_id": other_user.pk, "amount": 7}).encode()
    response = client_for(user).generic("POST", TRANSFER, body, content_type=content_type)
    assert error_of(response) == (415, "unsupported_media_type")
    assert ledger_snapshot() == before


@pytest.mark.parametrize("cursor", ["!!!!", "=", "YQ==", "YQ", "bz0x!", "eD0x", "bz0xJng9MQ=="])
def test_a_cursor_the_server_never_issued_is_400(client_for, user, fund, cursor):
    fund(user, 100)
    response = client_for(user).get(HISTORY, {"cursor": cursor})
    assert error_of(response) == (400, "validation_error")


def test_an_empty_cursor_is_no_cursor(client_for, user, fund):
    fund(user, 10)
    response = client_for(user).get(HISTORY, {"cursor": ""})
    assert response.status_code == 200 and len(response.json()["results"]) == 1


def test_an_issued_cursor_still_pages(client_for, user, fund, settings):
    for _ in range(3):
        fund(user, 10)
    client = client_for(user)
    first = client.get(HISTORY, {"page_size": 1}).json()
    second = client.get(first["next"])
    assert second.status_code == 200
    assert second.json()["results"][0]["id"] != first["results"][0]["id"]
    assert client.get(second.json()["previous"]).status_code == 200


@pytest.mark.parametrize("value", ["1.0", "1.", " 1", "1 ", "+1", "1e0", "0x1", "١"])
@pytest.mark.parametrize("path", ["/api/v1/admin/wallets", "/api/v1/admin/approvals"])
def test_a_query_user_id_must_be_digits(client_for, staff, path, value):
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_wallet", "adjust_points"])
    )
    response = client_for(staff).get(path, {"user_id": value})
    assert error_of(response) == (400, "validation_error")
    assert client_for(staff).get(path, {"user_id": str(staff.pk)}).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/api/v1/wallet/balance", "/api/schema/", "/healthz", "/", "/admin/login/", "/api/nope"],
)
def test_every_response_carries_a_permissions_policy(client, db, path):
    response = client.get(path)
    assert response["Permissions-Policy"] == PERMISSIONS_POLICY
    assert "camera=()" in PERMISSIONS_POLICY and "geolocation=()" in PERMISSIONS_POLICY
