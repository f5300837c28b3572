"""Login lockout (django-axes) at the HTTP level, on the admin and the browsable-API login.

After AUTH_LOCKOUT_FAILURES wrong passwords for one username from one address, that pair
is refused — even with the right password — until AUTH_LOCKOUT_MINUTES have passed since
the last failure; another address or another username is not affected. Each lockout is
one `auth.lockout` audit event on the system chain.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db import connection
from django.test import Client

from audit.models import AuditEvent
from wallet.tests.factories import UserFactory

PASSWORD = "correct horse battery staple"
API_LOGIN = "/api/auth/login/"
ADMIN_LOGIN = "/admin/login/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def victim(db):
    user = UserFactory(username="victim", is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def login(url: str, password: str, ip: str = "10.0.0.1", username: str = "victim", **extra):
    client = Client(REMOTE_ADDR=ip)
    response = client.post(url, {"username": username, "password": password}, **extra)
    return response, client


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(url: str, times: int, **kwargs) -> list[int]:
    return [login(url, "wrong-password", **kwargs)[0].status_code for _ in range(times)]


@pytest.mark.parametrize("url", [API_LOGIN, ADMIN_LOGIN])
def test_five_failures_lock_the_username_from_that_address_even_with_the_right_password(
    victim, url
):
    statuses = fail(url, 5)
    assert statuses[-1] == 429  # the fifth failure starts the lockout
    assert statuses[:4] == ([400] * 4 if url == API_LOGIN else [200] * 4)

    response, client = login(url, PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    assert not logged_in(client)

    events = AuditEvent.objects.filter(action="auth.lockout")
    assert events.count() == 1
    assert events.get().metadata["username"] == "victim"
    assert events.get().metadata["ip"] == "10.0.0.1"


def test_the_api_login_answers_json_errors(victim):
    response, _ = login(API_LOGIN, "wrong")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    fail(API_LOGIN, 4)
    response, _ = login(API_LOGIN, PASSWORD)
    assert response.json()["error"]["code"] == "throttled"
    assert response["Content-Type"] == "application/json"


def test_another_address_or_another_username_is_not_locked(victim):
    other = UserFactory(username="bystander")
    other.set_password(PASSWORD)
    other.save()
    fail(API_LOGIN, 5)
    response, client = login(API_LOGIN, PASSWORD, ip="10.0.0.2")
    assert response.status_code == 302 and logged_in(client)
    response, client = login(API_LOGIN, PASSWORD, username="bystander")
    assert response.status_code == 302 and logged_in(client)


def test_a_spoofed_forwarded_for_header_does_not_dodge_the_lockout(victim):
    for n in range(5):
        login(API_LOGIN, "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response, client = login(API_LOGIN, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert response.status_code == 429 and not logged_in(client)


def test_the_lockout_ends_after_the_window(victim):
    fail(API_LOGIN, 5)
    assert login(API_LOGIN, PASSWORD)[0].status_code == 429
    # Attempts during the lockout did not extend it; move the last failure 15 minutes back.
    attempt = AccessAttempt.objects.get(username="victim")
    AccessAttempt.objects.filter(pk=attempt.pk).update(
        attempt_time=attempt.attempt_time - timedelta(minutes=15, seconds=1)
    )
    response, client = login(API_LOGIN, PASSWORD)
    assert response.status_code == 302 and logged_in(client)


def test_retry_after_is_what_is_left_of_the_window(victim):
    fail(API_LOGIN, 5)
    attempt = AccessAttempt.objects.get(username="victim")
    AccessAttempt.objects.filter(pk=attempt.pk).update(
        attempt_time=attempt.attempt_time - timedelta(minutes=5)
    )
    response, _ = login(API_LOGIN, PASSWORD)
    assert response.status_code == 429
    assert 599 <= int(response["Retry-After"]) <= 600  # 10 of the 15 minutes are left
    assert 599 <= response.json()["error"]["details"]["retry_after_seconds"] <= 600


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_write_one_lockout_event(victim):
    """30 wrong passwords at once, each on its own thread and connection: one lockout, one
    `auth.lockout` event (before the unique key, 12–13 events)."""
    barrier = threading.Barrier(30)
    statuses: list[int] = []

    def attempt() -> None:
        try:
            barrier.wait()
            statuses.append(login(API_LOGIN, "wrong-password")[0].status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(statuses) == 30 and 429 in statuses
    assert AuditEvent.objects.filter(action="auth.lockout").count() == 1
    assert login(API_LOGIN, PASSWORD)[0].status_code == 429


def test_failures_below_the_limit_are_forgotten_after_a_success(victim):
    fail(API_LOGIN, 4)
    assert login(API_LOGIN, PASSWORD)[0].status_code == 302
    assert fail(API_LOGIN, 4) == [400] * 4
    assert login(API_LOGIN, PASSWORD)[0].status_code == 302


def test_the_limits_come_from_the_settings(victim, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=3)
    assert fail(API_LOGIN, 2) == [400, 429]
    response, _ = login(API_LOGIN, PASSWORD)
    assert response.status_code == 429 and response["Retry-After"] == "180"


def test_logout_and_unknown_methods_answer_json(victim):
    response = Client().get("/api/auth/logout/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    response = Client().put(API_LOGIN)
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_csrf_failure_under_api_is_json(victim):
    client = Client(enforce_csrf_checks=True)
    response = client.post(API_LOGIN, {"username": "victim", "password": PASSWORD})
    assert response.status_code == 403
    body = response.json()
    assert body["error"]["code"] == "permission_denied"
    assert "CSRF" in body["error"]["message"]
    assert response["X-Request-ID"]
