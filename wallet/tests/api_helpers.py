"""Shared pieces of the HTTP API tests: raw JSON bodies, the bad inputs, staff users."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from wallet.tests.factories import StaffFactory

# Every bad amount class, as the raw JSON literal a client would send, and the contract's
# code. Raw text, because json.dumps cannot produce `1e3` and a Python client would turn
# 1.0 into 1.0 but never into `1e3` or a 30-digit integer literal.
BAD_AMOUNT_LITERALS: list[tuple[str, str]] = [
    ("0", "validation_error"),
    ("-5", "validation_error"),
    ("1.5", "validation_error"),
    ("1.0", "validation_error"),
    ("1e3", "validation_error"),
    ("1e400", "validation_error"),
    ('"10"', "validation_error"),
    ('""', "validation_error"),
    ("true", "validation_error"),
    ("false", "validation_error"),
    ("null", "validation_error"),
    ("[]", "validation_error"),
    ('{"n": 1}', "validation_error"),
    ("NaN", "validation_error"),
    ("Infinity", "validation_error"),
    ("1000001", "amount_too_large"),
    ("9223372036854775807", "amount_too_large"),
    ("99999999999999999999999999999", "amount_too_large"),
]
BAD_AMOUNT_IDS = [literal for literal, _ in BAD_AMOUNT_LITERALS]


def body_with(template: dict[str, Any], **raw: str) -> str:
    """JSON text of `template` with some values replaced by raw JSON literals."""
    import json

    parts = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in template.items()]
    parts += [f"{json.dumps(key)}: {literal}" for key, literal in raw.items()]
    return "{" + ", ".join(parts) + "}"


def post_raw(client, path: str, text: str, method: str = "post", **headers: str):
    return getattr(client, method)(path, data=text, content_type="application/json", **headers)


def staff_in(group: str, username: str):
    """A staff user in one of the groups the data migration created."""
    user = StaffFactory(username=username)
    user.groups.add(Group.objects.get(name=group))
    return user


def error_of(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def staff_with(permission: str, username: str):
    """A staff user holding one model permission directly ("app.codename").

    For transactional tests: the database flush between them removes the groups that the
    data migration created, but post_migrate re-creates the permissions.
    """
    from django.contrib.auth.models import Permission

    app_label, codename = permission.split(".")
    user = StaffFactory(username=username)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    return user
