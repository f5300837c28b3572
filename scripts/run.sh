#!/usr/bin/env bash
# Quick start 1: venv, install, migrate, demo data, serve. SQLite unless DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements.txt
# Development mode, with development values of its own (never valid in production: the
# service refuses any value starting with "insecure-dev-" when DEBUG is off).
export DEBUG="${DEBUG:-1}"
export SECRET_KEY="${SECRET_KEY:-insecure-dev-make-run-secret-key-for-this-laptop-only-0000}"
export AUDIT_HMAC_KEY="${AUDIT_HMAC_KEY:-insecure-dev-make-run-audit-key}"
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo
exec .venv/bin/python manage.py runserver "${HOST:-127.0.0.1}:${PORT:-8000}"
