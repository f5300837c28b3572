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
