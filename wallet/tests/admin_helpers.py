"""Staff users and data for the admin tests.

The `support` and `finance` groups come from the data migration. A transactional test
(live_server, concurrency) flushes every table, groups included, so `staff_in_group`
recreates a missing group from the migration's own permission lists.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.test import Client

from wallet.tests.factories import StaffFactory

_INITIAL = importlib.import_module("wallet.migrations.0002_staff_groups").GROUPS
GROUPS: dict[str, list[tuple[str, str]]] = {name: list(rights) for name, rights in _INITIAL.items()}
# Rights later data migrations add to the groups.
for _migration in ("0008_finance_approves_adjustments", "0011_finance_refunds_purchases"):
    for _name, _rights in importlib.import_module(f"wallet.migrations.{_migration}").ADDED.items():
        GROUPS[_name] = GROUPS[_name] + _rights
_REPORT = importlib.import_module("wallet.migrations.0004_finance_report")
GROUPS[_REPORT.GROUP] = GROUPS[_REPORT.GROUP] + [_REPORT.REPORT_PERMISSION]
# Rights later data migrations take from the groups (no staff group may deposit).
for _name, _rights in importlib.import_module(
    "wallet.migrations.0013_minting_controls"
).TAKEN.items():
    GROUPS[_name] = [right for right in GROUPS[_name] if right not in _rights]


def staff_group(name: str) -> Group:
    group, created = Group.objects.get_or_create(name=name)
    if created:
        for app_label, codename in GROUPS[name]:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    return group


def staff_in_group(username: str, group: str | None = None, **extra: Any):
    """An active staff user, in one of the migration's groups (or in none)."""
    user = StaffFactory(username=username, **extra)
    if group is not None:
        user.groups.add(staff_group(group))
    return user


def staff_with_permissions(username: str, *perms: str):
    """A staff user holding exactly `perms` ("app_label.codename"), no group."""
    user = StaffFactory(username=username)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


# --- the two-step money flows (form → confirmation page → booking) ---------------------


def token_of(location: str) -> str:
    """The signed token in a confirmation page's URL."""
    from urllib.parse import parse_qs, urlparse

    return parse_qs(urlparse(location).query)["token"][0]


def start_flow(client: Client, url: str, data: dict[str, Any]):
    """Submit step one; on success the answer is a redirect to the confirmation page."""
    return client.post(url, data)


def confirm_flow(client: Client, location: str, *, acknowledge: bool = False):
    """Open the confirmation page (GET, as a browser does), then press its button."""
    page = client.get(location)
    assert page.status_code == 200, page.status_code
    data = {"token": token_of(location)}
    if acknowledge:
        data["acknowledge"] = "on"
    return client.post(location.split("?")[0], data, follow=True)
