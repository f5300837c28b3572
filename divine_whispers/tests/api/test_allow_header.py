"""`Allow` names only the methods a resource answers: OPTIONS is 405, so it is not listed."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/wallet/spend"),
        ("delete", "/api/v1/wallet/balance"),
        ("options", "/api/v1/wallet/transfer"),
        ("options", "/api/v1/job-types"),
    ],
)
def test_allow_never_lists_options(client_for, user, method, path):
    answer = getattr(client_for(user), method)(path)
    assert answer.status_code == 405
    allowed = [m.strip() for m in answer["Allow"].split(",")]
    assert "OPTIONS" not in allowed and allowed, answer["Allow"]
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_allow_on_a_success_lists_what_is_answered(client_for, user, job_type):
    answer = client_for(user).get("/api/v1/job-types")
    assert answer.status_code == 200
    assert answer["Allow"] == "GET, HEAD"
    assert client_for(user).head("/api/v1/job-types").status_code == 200
    assert client_for(user).options("/api/v1/job-types").status_code == 405
