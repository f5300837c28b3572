#!/usr/bin/env bash
# Quick start 1: venv, install, migrate, demo data, serve. SQLite unless DATABASE_URL is set.
# Purchases run against a local Stripe (localstripe on LOCALSTRIPE_PORT, default PORT+1000)
# whose signed webhooks reach this server's /webhooks/stripe.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements.txt
scripts/bootstrap.sh requirements-localstripe.txt
# Development mode, with development values of its own (never valid in production: the
# service refuses any value starting with "insecure-dev-" when DEBUG is off).
export DEBUG="${DEBUG:-1}"
export SECRET_KEY="${SECRET_KEY:-insecure-dev-make-run-secret-key-for-this-laptop-only-0000}"
export AUDIT_HMAC_KEY="${AUDIT_HMAC_KEY:-insecure-dev-make-run-audit-key}"
host="${HOST:-127.0.0.1}"
port="${PORT:-8000}"
stripe_port="${LOCALSTRIPE_PORT:-$((port + 1000))}"
# Purchases against the local Stripe below: a test key, a local webhook secret.
: "${PAYMENTS_ENABLED:=1}" "${STRIPE_SECRET_KEY:=sk_test_make_run}"
: "${STRIPE_WEBHOOK_SECRET:=whsec_make_run_local}" "${STRIPE_API_BASE:=http://127.0.0.1:$stripe_port}"
export PAYMENTS_ENABLED STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET STRIPE_API_BASE

.venv/bin/python scripts/localstripe_server.py --port "$stripe_port" >/dev/null 2>&1 &
localstripe=$!
trap 'kill "$localstripe" 2>/dev/null || true' EXIT
# It starts in about a second; a busy machine can take much longer: wait up to 60 s.
stripe_up=""
for _ in $(seq 1 300); do
  if curl -fs -u sk_test_probe: "$STRIPE_API_BASE/v1/customers" >/dev/null 2>&1; then
    stripe_up=1
    break
  fi
  kill -0 "$localstripe" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$stripe_up" ]; then
  echo "The local Stripe (localstripe) did not start on $STRIPE_API_BASE: is port $stripe_port free? (LOCALSTRIPE_PORT chooses another)" >&2
  exit 1
fi
# localstripe signs each event with this secret and posts it to our webhook endpoint.
curl -fs "$STRIPE_API_BASE/_config/webhooks/divine-whispers" \
  -d "url=http://$host:$port/webhooks/stripe" -d "secret=${STRIPE_WEBHOOK_SECRET%%,*}" >/dev/null
echo "Local Stripe (localstripe) on $STRIPE_API_BASE, webhooks to http://$host:$port/webhooks/stripe"

.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo
.venv/bin/python manage.py runserver "$host:$port"
