"""What a bootstrap file declares, checked before anything is written.

`manage.py bootstrap --from FILE` reads a small TOML file (the standard library's
tomllib: no new dependency) declaring the first superuser, staff users with their
groups, service accounts with their long-lived API keys, job types and — once the
model exists — point packages. Everything is validated here, up front, so a typo in
the file stops the run before the first row is written (the file is applied in one
transaction by jobs.services.bootstrap).

Passwords never live in the file: an entry names the environment variable holding it
(`password_env`), so the file can sit in version control.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from divine_whispers import durations

_USERNAME = re.compile(r"^[\w.@+-]{1,150}$")
_CODE = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
_SECTIONS = {"superuser", "staff", "service_accounts", "job_types", "packages"}


class PlanError(ValueError):
    """The file is not a valid bootstrap plan (nothing was written)."""


@dataclass(frozen=True)
class UserSpec:
    username: str
    email: str = ""
    groups: tuple[str, ...] = ()
    password: str | None = None  # read from password_env; None: no usable password


@dataclass(frozen=True)
class ServiceAccountSpec:
    user: UserSpec
    key_name: str
    key_expires_in: timedelta
    # Rights held directly ("app_label.codename"): the payment service account holds
    # wallet.deposit_points alone, in no staff group (minting controls).
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobTypeSpec:
    code: str
    name: str
    price: int
    description: str = ""
    active: bool = True


@dataclass(frozen=True)
class Plan:
    superuser: UserSpec | None = None
    staff: tuple[UserSpec, ...] = ()
    service_accounts: tuple[ServiceAccountSpec, ...] = ()
    job_types: tuple[JobTypeSpec, ...] = ()
    packages: tuple[dict[str, Any], ...] = field(default=())


def load_plan(path: str | Path, environ: dict[str, str] | None = None) -> Plan:
    """The plan in the TOML file at `path`; PlanError names every problem found."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise PlanError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path} is not valid TOML: {exc}") from exc
    return parse_plan(data, os.environ if environ is None else environ)


def parse_plan(data: dict[str, Any], environ: dict[str, str]) -> Plan:
    unknown = sorted(set(data) - _SECTIONS)
    if unknown:
        raise PlanError(f"unknown section(s) {', '.join(unknown)}; known: {sorted(_SECTIONS)}")
    superuser = data.get("superuser")
    plan = Plan(
        superuser=_user(superuser, "superuser", environ) if superuser is not None else None,
        staff=tuple(
            _user(entry, f"staff[{i}]", environ) for i, entry in enumerate(_list(data, "staff"))
        ),
        service_accounts=tuple(
            _service_account(entry, f"service_accounts[{i}]", environ)
            for i, entry in enumerate(_list(data, "service_accounts"))
        ),
        job_types=tuple(
            _job_type(entry, f"job_types[{i}]") for i, entry in enumerate(_list(data, "job_types"))
        ),
        packages=tuple(_list(data, "packages")),
    )
    _no_duplicates([u.username for u in _all_users(plan)], "username")
    _no_duplicates([j.code for j in plan.job_types], "job type code")
    return plan


def _all_users(plan: Plan) -> list[UserSpec]:
    users = [plan.superuser] if plan.superuser else []
    return users + list(plan.staff) + [account.user for account in plan.service_accounts]


def _list(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise PlanError(f"{key} must be an array of tables ([[{key}]])")
    return value


def _keys(entry: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise PlanError(f"{where} must be a table")
    missing = sorted(required - set(entry))
    unknown = sorted(set(entry) - required - optional)
    if missing:
        raise PlanError(f"{where}: missing {', '.join(missing)}")
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {', '.join(unknown)}")
    return entry


def _text(entry: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = entry.get(key, default)
    if not isinstance(value, str):
        raise PlanError(f"{where}.{key} must be a string")
    return value


def _user(
    entry: Any, where: str, environ: dict[str, str], extra: frozenset[str] = frozenset()
) -> UserSpec:
    entry = _keys(entry, where, {"username"}, {"email", "groups", "password_env"} | extra)
    username = _text(entry, "username", where)
    if not _USERNAME.match(username):
        raise PlanError(f"{where}.username {username!r}: letters, digits and @.+-_ only")
    groups = entry.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise PlanError(f"{where}.groups must be a list of group names")
    password = None
    variable = entry.get("password_env")
    if variable is not None:
        if not isinstance(variable, str) or not environ.get(variable):
            raise PlanError(f"{where}.password_env: the variable {variable!r} is unset or empty")
        password = environ[variable]
    return UserSpec(username, _text(entry, "email", where), tuple(groups), password)


def _service_account(entry: Any, where: str, environ: dict[str, str]) -> ServiceAccountSpec:
    extra = frozenset({"key_name", "key_expires_in", "permissions"})
    user = _user(entry, where, environ, extra)
    permissions = entry.get("permissions", [])
    if not isinstance(permissions, list) or not all(
        isinstance(p, str) and p.count(".") == 1 for p in permissions
    ):
        raise PlanError(f"{where}.permissions must be a list of 'app_label.codename' names")
    name = _text(entry, "key_name", where, default="service")
    if not 1 <= len(name) <= 100:
        raise PlanError(f"{where}.key_name must be 1-100 characters")
    try:
        expires_in = durations.parse_duration(_text(entry, "key_expires_in", where, "365d"))
    except ValueError as exc:
        raise PlanError(f"{where}.key_expires_in: {exc}") from exc
    return ServiceAccountSpec(user, name, expires_in, tuple(permissions))


def _job_type(entry: Any, where: str) -> JobTypeSpec:
    entry = _keys(entry, where, {"code", "name", "price"}, {"description", "active"})
    code = _text(entry, "code", where)
    if not _CODE.match(code):
        raise PlanError(f"{where}.code {code!r}: letters, digits, - and _ only (max 64)")
    price = entry["price"]
    if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
        raise PlanError(f"{where}.price must be a positive whole number of points")
    active = entry.get("active", True)
    if not isinstance(active, bool):
        raise PlanError(f"{where}.active must be true or false")
    name = _text(entry, "name", where)
    if not 1 <= len(name) <= 200:
        raise PlanError(f"{where}.name must be 1-200 characters")
    return JobTypeSpec(code, name, price, _text(entry, "description", where), active)


def _no_duplicates(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise PlanError(f"{what} {value!r} is declared twice")
        seen.add(value)
