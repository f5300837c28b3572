"""Applying a bootstrap plan: the first users, groups, keys and job types of a fresh service.

Idempotent by construction — each entry is looked up first and only what is missing is
created — so running the same file again changes nothing and issues no second key. What
exists already is never overwritten: a job type whose price or name differs from the file
is reported and left alone (prices change through the admin's audited price change), a
user's password is never reset, groups are only added. The whole plan is applied in one
transaction: a refused entry (an unknown group, a username that exists without the
superuser flag) leaves the database as it was.

Job types are created through `save_job_type` (so their first price is audited) and keys
through `wallet.services.issue_token` (an `auth.token_issued` audit event each).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction
from django.utils import timezone

from jobs.models import JobType
from jobs.services.bootstrap_plan import JobTypeSpec, Plan, PlanError, UserSpec
from jobs.services.job_types import save_job_type
from wallet import services
from wallet.models import ApiToken, PointPackage
from wallet.services import issue_token

# The model point packages will live in; the loader takes them as soon as it exists.


@dataclass(frozen=True)
class NewKey:
    username: str
    name: str
    key: str
    expiry: str


@dataclass
class Outcome:
    """What the run did: one line per entry, and the keys issued (shown once)."""

    lines: list[str] = field(default_factory=list)
    keys: list[NewKey] = field(default_factory=list)
    changes: int = 0

    def note(self, line: str, *, changed: bool) -> None:
        self.lines.append(line)
        self.changes += int(changed)


def apply_plan(plan: Plan) -> Outcome:
    """Create what `plan` declares and is missing; PlanError (nothing written) if refused."""
    outcome = Outcome()
    with transaction.atomic():
        if plan.superuser:
            _superuser(plan.superuser, outcome)
        for spec in plan.staff:
            _user(spec, outcome, kind="staff")
        for account in plan.service_accounts:
            user = _user(account.user, outcome, kind="service account", staff=False)
            _add_permissions(user, account.permissions, outcome)
            _service_key(user, account.key_name, account.key_expires_in, outcome)
        for job_type in plan.job_types:
            _job_type(job_type, outcome)
        _packages(plan.packages, outcome)
    return outcome


def _superuser(spec: UserSpec, outcome: Outcome) -> None:
    User = get_user_model()
    existing = User.objects.filter(username=spec.username).first()
    if existing is not None:
        if not existing.is_superuser:
            raise PlanError(f"user {spec.username!r} exists and is not a superuser: refused")
        outcome.note(f"superuser {spec.username}: exists, unchanged", changed=False)
        return
    # No password: Django stores an unusable one (make_password(None)).
    user = User.objects.create_superuser(spec.username, spec.email, spec.password)
    _add_groups(user, spec.groups, outcome)
    outcome.note(f"superuser {spec.username}: created{_password_note(spec)}", changed=True)


def _user(spec: UserSpec, outcome: Outcome, *, kind: str, staff: bool = True) -> AbstractBaseUser:
    """Staff log in to the admin; a service account is not staff: no staff member may
    deposit, so the payment service account must not be one (minting controls)."""
    user, created = get_user_model().objects.get_or_create(
        username=spec.username, defaults={"email": spec.email, "is_staff": staff}
    )
    if created:
        if spec.password is None:
            user.set_unusable_password()
        else:
            user.set_password(spec.password)
        user.save(update_fields=["password"])
    added = _add_groups(user, spec.groups, outcome)
    if created:
        outcome.note(f"{kind} {spec.username}: created{_password_note(spec)}", changed=True)
    elif added:
        outcome.note(f"{kind} {spec.username}: exists, added to {', '.join(added)}", changed=True)
    else:
        outcome.note(f"{kind} {spec.username}: exists, unchanged", changed=False)
    return user


def _password_note(spec: UserSpec) -> str:
    if spec.password is None:
        return " (no usable password: set one with `manage.py changepassword`)"
    return ""


def _add_groups(user: AbstractBaseUser, names: tuple[str, ...], outcome: Outcome) -> list[str]:
    groups = {group.name: group for group in Group.objects.filter(name__in=names)}
    missing = sorted(set(names) - set(groups))
    if missing:
        raise PlanError(f"user {user.get_username()!r}: no group {', '.join(missing)}")
    have = set(user.groups.filter(name__in=names).values_list("name", flat=True))
    added = [name for name in names if name not in have]
    user.groups.add(*(groups[name] for name in added))
    return added


def _add_permissions(user: AbstractBaseUser, names: tuple[str, ...], outcome: Outcome) -> None:
    """Grant the rights a service account holds directly; an unknown name is refused."""
    for name in names:
        app_label, codename = name.split(".")
        permission = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if permission is None:
            raise PlanError(f"user {user.get_username()!r}: no permission {name}")
        if not user.user_permissions.filter(pk=permission.pk).exists():
            user.user_permissions.add(permission)
            outcome.note(f"service account {user.get_username()}: granted {name}", changed=True)


def _service_key(user: AbstractBaseUser, name: str, expires_in, outcome: Outcome) -> None:
    """One live key of this name per account: a second run issues none."""
    live = (
        ApiToken.objects.filter(user=user, name=name, expiry__gt=timezone.now())
        .order_by("-expiry")
        .first()
    )
    if live is not None:
        outcome.note(
            f"key {name!r} of {user.get_username()}: #{live.pk} valid until "
            f"{live.expiry:%Y-%m-%d}, none issued",
            changed=False,
        )
        return
    token, key = issue_token(user, expires_in=expires_in, name=name)
    outcome.keys.append(NewKey(user.get_username(), name, key, token.expiry.isoformat()))
    outcome.note(
        f"key {name!r} of {user.get_username()}: #{token.pk} issued, valid until "
        f"{token.expiry:%Y-%m-%d} (printed once, on stdout)",
        changed=True,
    )


def _job_type(spec: JobTypeSpec, outcome: Outcome) -> None:
    existing = JobType.objects.filter(code=spec.code).first()
    if existing is None:
        job_type = JobType(
            code=spec.code,
            name=spec.name,
            price=spec.price,
            description=spec.description,
            active=spec.active,
        )
        save_job_type(job_type=job_type, actor=None)
        outcome.note(f"job type {spec.code}: created at {spec.price} points", changed=True)
        return
    differs = [
        f"{attr} {getattr(existing, attr)!r} (file: {getattr(spec, attr)!r})"
        for attr in ("name", "price", "description", "active")
        if getattr(existing, attr) != getattr(spec, attr)
    ]
    if differs:
        outcome.note(
            f"job type {spec.code}: exists, left unchanged although it differs: "
            f"{'; '.join(differs)} (change it in the admin: price changes are audited)",
            changed=False,
        )
    else:
        outcome.note(f"job type {spec.code}: exists, unchanged", changed=False)


def _packages(packages: tuple[dict, ...], outcome: Outcome) -> None:
    """Point packages by code: created through the wallet's audited save (a new price is a
    `package.price_changed` event); an existing one is left as it is (prices change in the
    admin, audited), like job types."""
    for entry in packages:
        fields = _package_fields(entry)
        if PointPackage.objects.filter(code=fields["code"]).exists():
            outcome.note(f"package {fields['code']}: exists, unchanged", changed=False)
            continue
        services.save_package(package=PointPackage(**fields), actor=None)
        outcome.note(f"package {fields['code']}: created", changed=True)


def _package_fields(entry: dict) -> dict:
    allowed = {"code", "name", "points", "price", "currency", "active"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise PlanError(f"packages: unknown key(s) {', '.join(unknown)}")
    for key in ("code", "name", "points", "price"):
        if key not in entry:
            raise PlanError(f"packages: every package needs {key}")
    for key in ("points", "price"):
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise PlanError(f"packages.{entry['code']}.{key} must be a positive whole number")
    return dict(entry)
