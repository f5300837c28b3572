"""Refuse to run production on development secrets or on the development database.

Imported by settings.py, so it runs before anything else in every process that loads
Django: `manage.py` (any command, the job worker included), gunicorn's workers, the
tests' subprocesses. Failing there, with the variable's name, is better than a service
that starts on a SECRET_KEY printed in the public source (sessions forgeable) or an
AUDIT_HMAC_KEY anyone can read (audit chain forgeable), or that silently writes to an
SQLite file without the database's append-only triggers.

It must not import Django's settings (it runs while they load).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

# Every development value the source ships starts with this prefix (settings.py defaults,
# scripts/run.sh); production refuses any value that does.
DEV_VALUE_PREFIX = "insecure-dev-"
# Development defaults shipped by earlier versions: a deployment that copied one is refused.
FORMER_DEV_VALUES = frozenset(
    {
        "dev-only-audit-key-change-me",
        "insecure-dev-only-secret-key-change-me-in-production",
    }
)
REQUIRED_SECRETS = ("SECRET_KEY", "AUDIT_HMAC_KEY")
# A short key can be guessed: an HMAC key of one character has 256 values. 32 characters
# of `openssl rand -hex 32` (64) or `secrets.token_urlsafe(32)` (43) are well past it.
SECRET_MIN_LENGTH = 32


def is_development_value(value: str) -> bool:
    return value.startswith(DEV_VALUE_PREFIX) or value in FORMER_DEV_VALUES


def _secret_problem(name: str, value: str) -> str | None:
    if not value.strip():
        return f"{name} is not set"
    if is_development_value(value):
        return f"{name} is a development value from the source code"
    if len(value) < SECRET_MIN_LENGTH:
        return f"{name} is shorter than {SECRET_MIN_LENGTH} characters"
    return None


def _database_problem(url: str) -> str | None:
    if not url.strip():
        return "DATABASE_URL is not set (the SQLite fallback is for development only)"
    if url.split(":", 1)[0].lower().startswith("sqlite"):
        return "DATABASE_URL names SQLite, which is for development only"
    return None


PAYMENT_SECRETS = ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})


def _payment_problems(environ: Mapping[str, str]) -> list[str | None]:
    """With purchases on (PAYMENTS_ENABLED), the provider's key and webhook secret are
    required: a server that takes payments it cannot verify would credit forged events."""
    if environ.get("PAYMENTS_ENABLED", "").strip().lower() not in _TRUE:
        return []
    return [
        f"{name} is not set (PAYMENTS_ENABLED is on)"
        for name in PAYMENT_SECRETS
        if not environ.get(name, "").strip()
    ]


def production_problems(environ: Mapping[str, str]) -> list[str]:
    """What is wrong with this environment for a DEBUG-off process (empty: nothing)."""
    problems = [_secret_problem(name, environ.get(name, "")) for name in REQUIRED_SECRETS]
    problems.append(_database_problem(environ.get("DATABASE_URL", "")))
    problems += _payment_problems(environ)
    return [problem for problem in problems if problem]


def refuse_insecure_production(environ: Mapping[str, str]) -> None:
    """Raise ImproperlyConfigured naming every variable that is missing or unsafe."""
    problems = production_problems(environ)
    if problems:
        raise ImproperlyConfigured(
            f"Refusing to start with DEBUG off: {'; '.join(problems)}. Set them in the "
            "environment (docs/operations/production.md), or DEBUG=1 for development."
        )
