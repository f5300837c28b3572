"""An unexpected error is `500 internal_error` with the request id, and never claims that
nothing changed (it cannot know)."""

from __future__ import annotations

import pytest

from wallet import services

pytestmark = pytest.mark.django_db


def test_an_unexpected_error_is_a_500_with_the_request_id(user, client_for, fund, monkeypatch):
    fund(user, 100)

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "spend", broken)

    response = client_for(user).post("/api/v1/wallet/spend", {"job_type": "x"}, format="json")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert error["details"]["request_id"] == response["X-Request-ID"]
    assert "nothing" not in error["message"].lower()
    assert "same reference" in error["message"]
