"""Hand-written hostile requests against every write endpoint of the API.

Huge and deeply nested JSON, wrong content types, unicode where only printable ASCII is
allowed, a 10 MB body, odd paths. Each must get the contract's JSON error — never a 5xx,
never Django's HTML page — and change nothing (`ledger_snapshot()` before/after).
"""

from __future__ import annotations

import json

import pytest

from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.tests.api_helpers import error_of
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import ledger_snapshot
from wallet.tests.reliability.invariants import assert_all_invariants

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_velocity_limit")]

MB = 1024 * 1024


@pytest.fixture
def world(settings, client_for):
    settings.API_THROTTLE_RATE = "100000/minute"
    JobTypeFactory(code="fortune", price=50)
    root = StaffFactory(username="hostile-root", is_superuser=True)
    other = UserFactory(username="hostile-other")
    services.deposit(user=root, amount=10_000, reference_id="hostile-seed", actor=payment_account())
    spend, job = services.spend(user=root, job_type="fortune")
    return {"client": client_for(root), "root": root, "other": other, "spend": spend, "job": job}


def endpoints(world: dict) -> list[tuple[str, str, dict]]:
    """(method, path, a valid body) of every write endpoint."""
    return [
        ("post", "/api/v1/wallet/spend", {"job_type": "fortune"}),
        ("post", "/api/v1/wallet/transfer", {"to_user_id": world["other"].pk, "amount": 5}),
        (
            "post",
            "/api/v1/wallet/deposit",
            {"user_id": world["other"].pk, "amount": 5, "reference_id": "h-1"},
        ),
        ("put", f"/api/v1/admin/users/{world['other'].pk}/points", {"amount": 5, "reason": "h"}),
        (
            "post",
            f"/api/v1/admin/transactions/{world['spend'].pk}/refund",
            {"amount": 1, "reason": "h"},
        ),
    ]
    # POST /jobs/{id}/cancel takes no body and never reads one: what is sent is ignored.


def send(world: dict, method: str, path: str, body: str | bytes, content_type: str, **headers):
    return getattr(world["client"], method)(path, data=body, content_type=content_type, **headers)


def assert_refused(response, status: int | tuple[int, ...], code: str | None = None) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    got_status, got_code = error_of(response)  # the JSON envelope, never HTML
    assert response["Content-Type"] == "application/json"
    assert got_status in statuses, (got_status, got_code, response.content[:300])
    if code is not None:
        assert got_code == code, response.content[:300]


HOSTILE_BODIES = {
    # ~0.7 MB of JSON (under the 2.5 MB limit): parsed, then refused field by field.
    "huge_object": lambda valid: json.dumps(valid | {f"k{i}": "x" * 20 for i in range(20_000)}),
    "huge_array_amount": lambda valid: json.dumps(valid | {"amount": list(range(200_000))}),
    "deep_nesting": lambda valid: "[" * 200_000 + "]" * 200_000,
    "deep_nesting_in_field": lambda valid: json.dumps(valid)[:-1] + ', "x": ' + "{" * 5000,
    "top_level_array": lambda valid: json.dumps([valid] * 1000),
    "top_level_string": lambda valid: json.dumps("spend please"),
    "bytes_not_utf8": lambda valid: b'{"job_type": "\xff\xfe"}',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_BODIES))
def test_hostile_json_bodies_are_refused_on_every_write_endpoint(world, kind):
    before = ledger_snapshot()
    for method, path, valid in endpoints(world):
        body = HOSTILE_BODIES[kind](valid)
        response = send(world, method, path, body, "application/json")
        assert_refused(response, 400, "validation_error")
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/octet-stream",
        "",
    ],
)
def test_wrong_content_types_are_415_on_every_write_endpoint(world, content_type):
    before = ledger_snapshot()
    for method, path, valid in endpoints(world):
        # generic(): the raw body with exactly this Content-Type (none when empty).
        response = world["client"].generic(
            method.upper(), path, json.dumps(valid), content_type=content_type
        )
        assert_refused(response, 415, "unsupported_media_type")
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    "reference",
    ["réf-1", "参考", "🙂", "ref\u200bzero-width", "\u202eltr", "tab\there", "a" * 256, ""],
)
def test_non_ascii_or_oversized_references_are_refused(world, reference):
    before = ledger_snapshot()
    for method, path, valid in endpoints(world):
        body = json.dumps(valid | {"reference_id": reference})
        assert_refused(send(world, method, path, body, "application/json"), 400, "validation_error")
    assert ledger_snapshot() == before


@pytest.mark.parametrize("key", ["réf-1", "🙂".encode().decode("latin-1"), "a" * 256, "tab\tkey"])
def test_bad_idempotency_key_headers_are_refused(world, key):
    before = ledger_snapshot()
    for method, path, valid in endpoints(world):
        response = send(
            world, method, path, json.dumps(valid), "application/json", HTTP_IDEMPOTENCY_KEY=key
        )
        assert_refused(response, 400, "validation_error")
    assert ledger_snapshot() == before


def test_a_10_mb_body_is_413_on_every_write_endpoint(world):
    before = ledger_snapshot()
    for method, path, valid in endpoints(world):
        body = json.dumps(valid | {"padding": "x" * (10 * MB)})
        assert_refused(send(world, method, path, body, "application/json"), 413)
    assert ledger_snapshot() == before
    assert_all_invariants()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/no/such/endpoint"),  # was CSRF's HTML 403 (found by fuzzing)
        ("put", "/api/v1/admin/users/%0A/points"),  # was Django's HTML 404 (found by fuzzing)
        ("post", "/api/v1/jobs/%C3%81/cancel"),
        ("get", "/api/v1/wallet/balance%0A"),
        ("delete", "/api/v1/wallet/transactions/1%00"),
    ],
)
def test_odd_paths_are_a_json_404(world, method, path):
    response = getattr(world["client"], method)(path)
    assert_refused(response, 404, "not_found")
