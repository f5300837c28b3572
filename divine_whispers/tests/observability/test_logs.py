"""Structured logs: JSON lines with the request's fields, each money operation, and never a
token, a password or an Authorization value — whatever the code logs by mistake."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from divine_whispers.observability.logs import (
    RedactingJsonFormatter,
    RedactingTextFormatter,
    RequestIdFilter,
    redact,
)
from wallet.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct-horse-battery-staple-42"
METRICS_TOKEN = "metrics-bearer-secret-9f8e7d6c5b"


@pytest.fixture
def log_output():
    """Everything logged during the test, through the production JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _lines(stream: io.StringIO) -> list[dict]:
    text = stream.getvalue()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_request_line_has_the_contract_fields(log_output, user, job_type, fund, client_for):
    fund(user, 100)
    response = client_for(user).post(
        "/api/v1/wallet/spend",
        {"job_type": job_type.code},
        format="json",
        HTTP_X_REQUEST_ID="req-logs-1",
    )
    assert response.status_code == 201

    lines = _lines(log_output)
    (request,) = [line for line in lines if line.get("event") == "request"]
    assert request["request_id"] == "req-logs-1"
    assert request["user_id"] == user.pk
    assert request["route"] == "api/v1/wallet/spend"
    assert request["status"] == 201
    assert request["method"] == "POST"
    assert isinstance(request["duration_ms"], float)
    assert request["level"] == "INFO" and request["logger"] == "divine_whispers.request"
    assert "timestamp" in request
    (money,) = [line for line in lines if line.get("operation") == "spend"]
    assert money["event"] == "money_operation" and money["outcome"] == "ok"
    assert money["request_id"] == "req-logs-1"  # same id as the request line
    assert money["user_id"] == user.pk
    assert money["transactions"][0]["amount"] == -job_type.price


def test_refused_operation_is_logged_with_its_code(log_output, user, job_type, client_for):
    response = client_for(user).post(
        "/api/v1/wallet/spend", {"job_type": job_type.code}, format="json"
    )
    assert response.status_code == 402
    (money,) = [line for line in _lines(log_output) if line.get("operation") == "spend"]
    assert (money["outcome"], money["level"]) == ("insufficient_balance", "WARNING")


def test_no_secret_ever_reaches_a_log_line(log_output, client, settings, user, client_for):
    settings.METRICS_TOKEN = METRICS_TOKEN
    staff = UserFactory(username="ops-admin", is_staff=True, is_superuser=True)
    staff.set_password(PASSWORD)
    staff.save()
    api = client_for(user)
    # The key as the client sends it ("Token <key>"), however tokens are issued and stored.
    token = api._credentials["HTTP_AUTHORIZATION"].split()[-1]

    # Authenticated API calls, a wrong token, the metrics bearer, admin logins.
    assert api.get("/api/v1/wallet/balance").status_code == 200
    client.get("/api/v1/wallet/balance", HTTP_AUTHORIZATION=f"Token {token}x")
    client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}-wrong")
    client.post("/admin/login/", {"username": "ops-admin", "password": PASSWORD + "!"})
    client.post("/admin/login/", {"username": "ops-admin", "password": PASSWORD})
    client.post(f"/api/v1/wallet/spend?password={PASSWORD}", {}, format="json")

    # Code that logs a credential by mistake, in every shape we know of.
    leaky = logging.getLogger("some.careless.module")
    leaky.info("headers: %s", {"HTTP_AUTHORIZATION": f"Token {token}"})
    leaky.info("Authorization: Bearer %s", METRICS_TOKEN)
    leaky.warning("login failed for body %s", json.dumps({"password": PASSWORD}))
    leaky.info("retrying", extra={"authorization": f"Token {token}", "password": PASSWORD})
    leaky.info("query string password=%s&next=/", PASSWORD)
    try:
        raise RuntimeError(f"upstream said: Authorization=Token {token}")
    except RuntimeError:
        leaky.exception("request failed")

    output = log_output.getvalue()
    assert output.count("\n") >= 12  # the requests and the careless lines were all logged
    for secret in (token, PASSWORD, METRICS_TOKEN):
        assert secret not in output
    assert "[REDACTED]" in output
    for line in _lines(log_output):  # still one JSON object per line
        assert isinstance(line, dict)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Authorization: Token abcdef1234567890", "Authorization: "),
        ("'HTTP_AUTHORIZATION': 'Bearer xyz.abc-def'", "'HTTP_AUTHORIZATION': '"),
        ('{"password": "hunter2hunter2"}', '{"password": "'),
        ("new_password1=s3cret&x=1", "new_password1="),
        ("csrfmiddlewaretoken=abcdefgh1234", "csrfmiddlewaretoken="),
    ],
)
def test_redact_keeps_the_name_and_drops_the_value(text, kept):
    redacted = redact(text)
    assert redacted.startswith(kept)
    assert "[REDACTED]" in redacted
    assert text[len(kept) :].split("&")[0].strip("'\"}") not in redacted


def test_redact_leaves_ordinary_text_alone():
    text = "GET api/v1/wallet/balance 200 in 3.2 ms (request req-1, user 7)"
    assert redact(text) == text


def test_text_format_is_readable_and_redacted():
    formatter = RedactingTextFormatter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "login %s", ("password=abc",), None)
    record.route = "admin/login/"
    line = formatter.format(record)
    assert "INFO x login password=[REDACTED]" in line
    assert line.endswith("route=admin/login/")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def _log_format_with(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "LOG_FORMAT")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
            "'divine_whispers.settings'); from django.conf import settings; "
            "print(settings.LOG_FORMAT, settings.LOGGING['handlers']['console']['formatter'])",
        ],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_json_is_the_default_without_debug_and_text_with_it():
    assert _log_format_with(DEBUG="0") == "json json"
    assert _log_format_with(DEBUG="1") == "text text"
    assert _log_format_with(DEBUG="0", LOG_FORMAT="text") == "text text"
