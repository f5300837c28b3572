"""Production refuses to start on missing or development secrets, and on the
development database; `check --deploy` is clean under the README's production settings.

Each case starts a real process (manage.py, the job worker, gunicorn) with DEBUG off, as
an operator would: the refusal lives in the settings, so it must stop every entry point.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from divine_whispers.production import is_development_value, production_problems

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def production_env(**overrides: str | None) -> dict[str, str]:
    """The README's production environment (TLS variables included), then `overrides`;
    a None override removes the variable."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "AUDIT_HMAC_KEY"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="divine_whispers.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        AUDIT_HMAC_KEY=secrets.token_urlsafe(32),
        DATABASE_URL="postgres://dw:secret@db.internal:5432/divine_whispers",
        ALLOWED_HOSTS="wallet.example.com",
        HTTPS="1",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], env)


def run_sh_defaults() -> dict[str, str]:
    """The development values `make run` (scripts/run.sh) exports."""
    text = (ROOT / "scripts" / "run.sh").read_text()
    return dict(re.findall(r'export (\w+)="\$\{\1:-([^}]+)\}"', text))


REFUSED = [
    ("SECRET_KEY", None, "SECRET_KEY is not set"),
    ("SECRET_KEY", "", "SECRET_KEY is not set"),
    ("SECRET_KEY", "insecure-dev-only-secret-key-change-me-in-production", "SECRET_KEY is a dev"),
    ("AUDIT_HMAC_KEY", None, "AUDIT_HMAC_KEY is not set"),
    ("AUDIT_HMAC_KEY", "insecure-dev-only-audit-key-change-me", "AUDIT_HMAC_KEY is a dev"),
    ("AUDIT_HMAC_KEY", "dev-only-audit-key-change-me", "AUDIT_HMAC_KEY is a dev"),
    ("AUDIT_HMAC_KEY", "k", "AUDIT_HMAC_KEY is shorter than 32 characters"),
    ("AUDIT_HMAC_KEY", "x" * 31, "AUDIT_HMAC_KEY is shorter than 32 characters"),
    ("SECRET_KEY", "s" * 31, "SECRET_KEY is shorter than 32 characters"),
    ("DATABASE_URL", None, "DATABASE_URL is not set"),
    ("DATABASE_URL", "sqlite:////tmp/x.sqlite3", "DATABASE_URL names SQLite"),
]


@pytest.mark.parametrize(("name", "value", "message"), REFUSED)
def test_manage_py_refuses_an_insecure_production_variable(name, value, message):
    done = manage("check", env=production_env(**{name: value}))

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert message in done.stderr


def test_a_key_of_32_characters_is_long_enough():
    assert (
        production_problems(
            {"SECRET_KEY": "s" * 32, "AUDIT_HMAC_KEY": "a" * 32, "DATABASE_URL": "postgres://x/y"}
        )
        == []
    )


@pytest.mark.parametrize("name", ["SECRET_KEY", "AUDIT_HMAC_KEY"])
def test_the_values_make_run_uses_are_refused_in_production(name):
    value = run_sh_defaults()[name]

    done = manage("check", env=production_env(**{name: value}))

    assert done.returncode != 0
    assert f"{name} is a development value" in done.stderr


def test_the_job_worker_refuses_to_start_without_the_audit_key():
    done = manage("run_jobs", "--once", env=production_env(AUDIT_HMAC_KEY=None))

    assert done.returncode != 0
    assert "AUDIT_HMAC_KEY is not set" in done.stderr


def test_gunicorn_refuses_to_start_naming_the_variable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = production_env(SECRET_KEY=None, GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="1")

    done = run([str(GUNICORN), "-c", "gunicorn.conf.py"], env)

    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stdout + done.stderr


def test_every_problem_is_named_at_once():
    problems = production_problems({})

    assert [p.split()[0] for p in problems] == ["SECRET_KEY", "AUDIT_HMAC_KEY", "DATABASE_URL"]


def test_development_mode_starts_with_nothing_set():
    env = production_env(SECRET_KEY=None, AUDIT_HMAC_KEY=None, DATABASE_URL=None, DEBUG="1")
    env["SQLITE_PATH"] = "/nonexistent/never-opened.sqlite3"

    done = manage("check", env=env)

    assert done.returncode == 0, done.stderr


def test_check_deploy_is_clean_under_the_documented_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert done.returncode == 0, done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_without_tls_variables_names_what_is_missing():
    done = manage("check", "--deploy", env=production_env(HTTPS=None))

    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr


def test_shipped_development_values_are_recognised():
    for value in run_sh_defaults().values():
        if value != "1":  # DEBUG
            assert is_development_value(value)
    assert not is_development_value(secrets.token_urlsafe(50))


@pytest.mark.parametrize("name", ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_payments_on_without_a_provider_secret_refuses_to_start(name):
    done = manage("check", env=production_env(PAYMENTS_ENABLED="1", **{name: None}))

    assert done.returncode != 0
    assert f"{name} is not set (PAYMENTS_ENABLED is on)" in done.stderr


def test_payments_off_needs_no_provider_secret():
    env = production_env(PAYMENTS_ENABLED="0", STRIPE_SECRET_KEY=None, STRIPE_WEBHOOK_SECRET=None)
    assert manage("check", env=env).returncode == 0


@pytest.mark.django_db
def test_healthz_says_test_mode_for_a_test_key(client, settings):
    settings.PAYMENTS_ENABLED, settings.STRIPE_SECRET_KEY = True, "sk_test_abc"
    assert client.get("/healthz").json()["payments"] == "test_mode"
    settings.STRIPE_SECRET_KEY = "sk_live_abc"
    assert client.get("/healthz").json()["payments"] == "live"
    settings.PAYMENTS_ENABLED = False
    assert client.get("/healthz").json()["payments"] == "off"
