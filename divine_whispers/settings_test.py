"""Settings of the test suite (pytest.ini): the production settings, DEBUG off, with
explicit test-only secrets.

The service refuses to start with DEBUG off on missing or development secrets
(divine_whispers/production.py), so the suite generates its own: random, once per test
session, and exported to os.environ so that every subprocess a test starts (job workers,
`manage.py` commands, gunicorn) agrees on them — the audit chain's HMAC key above all.
DATABASE_URL comes from scripts/test.sh (or the caller), as before.
"""

import os
import secrets

for _name in ("SECRET_KEY", "AUDIT_HMAC_KEY"):
    os.environ.setdefault(_name, f"test-suite-{secrets.token_urlsafe(48)}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "divine_whispers.settings_test")

from divine_whispers.settings import *  # noqa: E402, F403

# Purchases on, against a local Stripe only: the suite's fixture (wallet/tests/payments.py)
# starts localstripe and points STRIPE_API_BASE at it; until then the base is a closed local
# port, so no test ever reaches the internet.
for _name, _value in {
    "PAYMENTS_ENABLED": "1",
    "STRIPE_SECRET_KEY": "sk_test_suite",
    "STRIPE_WEBHOOK_SECRET": "whsec_test_suite_current,whsec_test_suite_previous",
    "STRIPE_API_BASE": "http://127.0.0.1:9",
}.items():
    os.environ.setdefault(_name, _value)
PAYMENTS_ENABLED = True
STRIPE_SECRET_KEY = os.environ["STRIPE_SECRET_KEY"]
STRIPE_WEBHOOK_SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]
STRIPE_API_BASE = os.environ["STRIPE_API_BASE"]
