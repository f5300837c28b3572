"""Secure headers at the HTTP level: no-store on /api/, a CSP on HTML pages, and the TLS
switches (SSL redirect, HSTS, secure cookies) that the README documents."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_api_success_and_error_answers_are_never_stored(user, client_for, api_client):
    assert _no_store(client_for(user).get("/api/v1/wallet/balance"))
    assert _no_store(api_client.get("/api/v1/wallet/balance"))  # 401
    assert _no_store(api_client.get("/api/v1/no-such-thing"))  # 404
    assert _no_store(api_client.get("/api/schema/"))


def test_admin_pages_carry_a_content_security_policy():
    response = Client().get("/admin/login/")

    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'self'" in policy


def test_swagger_ui_needs_no_inline_script(api_client):
    page = api_client.get("/api/docs/")
    script = api_client.get("/api/docs/?script=")

    assert "Content-Security-Policy" in page
    assert "<script>" not in page.content.decode().replace(" ", "")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()


@pytest.fixture
def tls(settings):
    """The documented TLS deployment (HTTPS=1) as settings."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True


def test_tls_deployment_redirects_plain_http_except_healthz(tls):
    client = Client()

    assert client.get("/api/v1/wallet/balance").status_code == 301
    assert client.get("/healthz").status_code in {200, 503}


def test_tls_deployment_sends_hsts_and_secure_cookies(tls, staff):
    client = Client()
    page = client.get("/admin/login/", secure=True)

    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert page.cookies["csrftoken"]["secure"]
