"""API keys at the HTTP level: hashed at rest, expiring, revocable, issued once.

Every key is checked by a real request to /api/v1/wallet/balance with
`Authorization: Token <key>`; the database is inspected to prove no usable key is stored.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.crypto import hash_token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from wallet.models import ApiToken
from wallet.services.api_keys import issue_token
from wallet.tests.api_helpers import error_of
from wallet.tests.factories import StaffFactory, UserFactory

BALANCE = "/api/v1/wallet/balance"
KEY = re.compile(r"^[0-9a-f]{64}$")

pytestmark = pytest.mark.django_db


def get_balance(key: str):
    return APIClient().get(BALANCE, HTTP_AUTHORIZATION=f"Token {key}")


def issue(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def all_stored_text() -> str:
    """Every column of every API key row, as text: what a database reader sees."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM wallet_apitoken")
        return " ".join(str(value) for row in cursor.fetchall() for value in row)


def test_issue_token_prints_the_key_once_and_it_authenticates(user):
    key, note = issue(user.username, "--name", "mobile app")
    assert KEY.match(key), key
    assert "shown only now" in note and key not in note
    response = get_balance(key)
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == user.pk
    token = ApiToken.objects.get(user=user)
    assert token.name == "mobile app"
    assert token.digest == hash_token(key)


def test_only_a_digest_is_stored_never_a_usable_key(user):
    key, _ = issue(user.username)
    stored = all_stored_text()
    assert key not in stored
    assert hash_token(key) in stored
    # Presenting what the database holds (digest, prefix) authenticates nobody.
    token = ApiToken.objects.get(user=user)
    for leaked in (token.digest, token.token_key, token.digest[:64]):
        assert error_of(get_balance(leaked)) == (401, "not_authenticated")


def test_every_key_expires_after_the_default_ttl(user, settings):
    assert timedelta(days=90) == settings.API_TOKEN_TTL
    before = timezone.now()
    issue(user.username)
    expiry = ApiToken.objects.get(user=user).expiry
    assert before + timedelta(days=90) <= expiry <= timezone.now() + timedelta(days=90)


def test_expires_in_overrides_the_ttl(user):
    issue(user.username, "--expires-in", "30d")
    expiry = ApiToken.objects.get(user=user).expiry
    assert abs(expiry - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


@pytest.mark.parametrize("bad", ["0d", "30", "1y", "-5d", "abc"])
def test_issue_token_refuses_a_bad_duration(user, bad):
    with pytest.raises(CommandError, match="--expires-in"):
        issue(user.username, "--expires-in", bad)
    assert not ApiToken.objects.exists()


def test_issue_token_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user"):
        issue("nobody-here")


def test_an_expired_key_is_refused_on_the_next_request(user):
    key, _ = issue(user.username)
    assert get_balance(key).status_code == 200
    ApiToken.objects.filter(user=user).update(expiry=timezone.now() - timedelta(seconds=1))
    response = get_balance(key)
    assert error_of(response) == (401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_revoke_tokens_refuses_every_key_of_the_user_on_the_next_request(user, other_user):
    first, _ = issue(user.username)
    second, _ = issue(user.username, "--name", "second")
    others, _ = issue(other_user.username)
    assert get_balance(first).status_code == 200
    out = io.StringIO()
    call_command("revoke_tokens", user.username, stdout=out)
    assert "Revoked 2 API key(s)" in out.getvalue()
    assert error_of(get_balance(first)) == (401, "not_authenticated")
    assert error_of(get_balance(second)) == (401, "not_authenticated")
    assert get_balance(others).status_code == 200
    revoked = AuditEvent.objects.get(action="auth.token_revoked")
    assert revoked.metadata["user_id"] == user.pk


def test_issuing_is_audited_without_the_key(user):
    key, _ = issue(user.username)
    event = AuditEvent.objects.get(action="auth.token_issued")
    assert event.metadata["user_id"] == user.pk
    assert key not in str(event.metadata)


@pytest.mark.parametrize(
    "header",
    ["Token not-a-real-key", "Token " + "0" * 64, "Token", "Token a b", "Bearer x", "Token \xe9"],
)
def test_an_unknown_or_malformed_key_is_401_json(db, header):
    response = APIClient().get(BALANCE, HTTP_AUTHORIZATION=header)
    assert error_of(response) == (401, "not_authenticated")


def test_an_inactive_users_key_is_refused(user):
    key, _ = issue(user.username)
    user.is_active = False
    user.save()
    assert error_of(get_balance(key)) == (401, "not_authenticated")


def test_authentication_costs_one_indexed_query_and_writes_nothing(user):
    _token, key = issue_token(user)
    get_balance(key)  # warm-up (wallet creation)
    with CaptureQueriesContext(connection) as queries:
        assert get_balance(key).status_code == 200
    token_queries = [q["sql"] for q in queries.captured_queries if "wallet_apitoken" in q["sql"]]
    assert len(token_queries) == 1, token_queries
    assert token_queries[0].startswith("SELECT") and '"digest" =' in token_queries[0]
    writes = [q for q in token_queries if not q.startswith("SELECT")]
    assert writes == []


# --- Admin ---------------------------------------------------------------------------


def _issuer(*codenames: str):
    staff = StaffFactory(username="keymaster")
    staff.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="wallet", codename__in=codenames)
    )
    return staff


def test_a_superuser_issues_a_key_in_the_admin_shown_once(client, user):
    root = StaffFactory(username="key-root", is_superuser=True)
    client.force_login(root)
    response = client.post(
        "/admin/wallet/apitoken/add/",
        {"user": user.pk, "name": "partner", "expires_in_days": "7"},
    )
    assert response.status_code == 200, response.content[:2000]
    assert "no-store" in response["Cache-Control"]
    key = re.search(rb'id="issued-api-key" value="([0-9a-f]{64})"', response.content).group(1)
    key = key.decode()
    assert get_balance(key).status_code == 200
    token = ApiToken.objects.get(user=user)
    assert abs(token.expiry - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    # No later page shows the key or its digest.
    for page in ("/admin/wallet/apitoken/", f"/admin/wallet/apitoken/{token.pk}/change/"):
        text = client.get(page).content.decode()
        assert key not in text and token.digest not in text and token.token_key not in text
    # Revoking from the admin: the next request is refused.
    client.post(f"/admin/wallet/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert error_of(get_balance(key)) == (401, "not_authenticated")


def test_staff_without_the_permission_cannot_issue(client, user):
    client.force_login(_issuer("view_apitoken"))
    response = client.post("/admin/wallet/apitoken/add/", {"user": user.pk, "name": "x"})
    assert response.status_code == 403
    assert not ApiToken.objects.exists()


def _refused_issues() -> list[dict]:
    return list(
        AuditEvent.objects.filter(action="auth.token_issue_refused").values_list(
            "actor_id", "metadata"
        )
    )


@pytest.mark.parametrize("target", ["customer", "peer_finance", "superuser"])
def test_staff_with_the_permission_cannot_issue_a_key_for_someone_else(client, target):
    """Key issuance as a lever: a key for a customer (move their points) or for a peer
    (approve one's own request as the peer) is refused, with a clear message, audited."""
    issuer = _issuer("add_apitoken", "view_apitoken", "adjust_points", "approve_adjustment")
    client.force_login(issuer)
    other = {
        "customer": lambda: UserFactory(username="a-customer"),
        "peer_finance": lambda: _peer("adjust_points", "approve_adjustment"),
        "superuser": lambda: UserFactory(username="root-user", is_superuser=True, is_staff=True),
    }[target]()

    response = client.post("/admin/wallet/apitoken/add/", {"user": other.pk, "name": "x"})

    assert response.status_code == 200
    assert b"Only a superuser may issue an API key for another account." in response.content
    assert not ApiToken.objects.exists()
    assert [(actor, meta["user_id"]) for actor, meta in _refused_issues()] == [
        (issuer.pk, other.pk)
    ]


def test_staff_may_issue_a_key_for_themselves(client):
    issuer = _issuer("add_apitoken", "view_apitoken")
    client.force_login(issuer)

    response = client.post("/admin/wallet/apitoken/add/", {"user": issuer.pk, "name": "mine"})

    assert response.status_code == 200
    assert ApiToken.objects.get().user == issuer


def test_the_service_refuses_a_key_for_someone_else_whoever_calls_it(user):
    from divine_whispers.errors import PermissionRefused

    issuer = _issuer("add_apitoken")
    with pytest.raises(PermissionRefused):
        issue_token(user, actor=issuer)
    assert not ApiToken.objects.exists()
    assert len(_refused_issues()) == 1


def test_the_operator_command_issues_for_anyone_audited_as_the_system(user):
    call_command("issue_token", user.username, stdout=io.StringIO(), stderr=io.StringIO())

    event = AuditEvent.objects.get(action="auth.token_issued")
    assert (event.actor_id, event.metadata["user_id"]) == (None, user.pk)


def _peer(*codenames: str):
    peer = StaffFactory(username="peer-finance")
    peer.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="wallet", codename__in=codenames)
    )
    return peer
