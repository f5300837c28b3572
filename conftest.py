"""Shared fixtures. The suite runs on PostgreSQL (scripts/test.sh chooses the server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db.backends.signals import connection_created

from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.tests.factories import StaffFactory, UserFactory, payment_account


def _allow_truncate_in_tests(sender, connection, **kwargs) -> None:
    """The test suite's escape hatch through the append-only TRUNCATE triggers.

    pytest-django ends every `transaction=True` test with Django's `flush`, which
    TRUNCATEs all tables; the triggers of audit/migrations/0002 refuse that unless the
    session sets `divine_whispers.allow_truncate = on` (and the role owns the tables).
    Set on every new connection, in autocommit, so it lasts the whole session — threads
    and reconnects included. Only the test suite does this; the application never does.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET divine_whispers.allow_truncate = 'on'")


# The local Stripe (localstripe) and signed webhook deliveries of the purchase tests.
pytest_plugins = ["wallet.tests.payments"]

connection_created.connect(_allow_truncate_in_tests, dispatch_uid="dw-allow-truncate-in-tests")


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return StaffFactory(username="cashier")


@pytest.fixture
def payer(db):
    """The payment service account: the only account that may deposit."""
    return payment_account()


@pytest.fixture
def job_type(db):
    return JobTypeFactory(code="fortune", name="Fortune reading", price=50)


@pytest.fixture
def fund(payer) -> Callable[..., int]:
    """Put points in a user's wallet the only legitimate way: a deposit."""
    counter = iter(range(1, 10**9))

    def _fund(target, amount: int) -> int:
        result = services.deposit(
            user=target,
            amount=amount,
            reference_id=f"test-pay-{next(counter)}-{target.pk}",
            actor=payer,
        )
        return result.transaction.balance_after

    return _fund


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Hashing test users' passwords with PBKDF2 would dominate the suite's time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters live in the cache; every test starts with none, and with no
    memory of an earlier test's cache outage (divine_whispers/cache_guard.py)."""
    from django.core.cache import cache

    from divine_whispers import cache_guard

    cache_guard.reset()
    cache.clear()
    yield
    cache_guard.reset()
    cache.clear()


@pytest.fixture
def api_client():
    """An anonymous DRF test client."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def client_for(db) -> Callable:
    """`client_for(user)`: a DRF test client authenticated with a real API key.

    The key is stored the way `manage.py issue_token` stores one (only its digest, with an
    expiry), so every API test goes through the production authentication path. The row
    is written directly rather than through wallet.services.api_keys.issue_token so that
    tests which count audit events do not see an `auth.token_issued` event of the fixture's own.
    """
    from django.conf import settings
    from rest_framework.test import APIClient

    from wallet.models import ApiToken

    def _client_for(target):
        # knox's manager: stores the digest, returns the key.
        _token, key = ApiToken.objects.create(
            user=target, expiry=settings.API_TOKEN_TTL, name="test"
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return _client_for
