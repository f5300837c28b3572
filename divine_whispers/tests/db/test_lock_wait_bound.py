"""A row lock held by another connection: the request's lock wait ends at
DATABASE_LOCK_TIMEOUT_SECONDS with 503 service_unavailable, outcome not_applied, and
nothing changed. Before the bounds the request waited as long as the lock was held."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from wallet.models import Wallet
from wallet.tests.helpers import ledger_snapshot
from wallet.tests.reliability.invariants import assert_all_invariants

pytestmark = pytest.mark.django_db(transaction=True)


def _hold_wallet_lock(user, locked: threading.Event, release: threading.Event) -> None:
    try:
        with transaction.atomic():
            Wallet.objects.select_for_update().get(user=user)
            locked.set()
            release.wait(30)
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/wallet/transfer", lambda other: {"to_user_id": other.pk, "amount": 5}),
        ("/api/v1/wallet/spend", lambda other: {"job_type": "fortune"}),
    ],
)
def test_a_held_row_lock_ends_in_503_not_applied_within_the_bound(
    client_for, user, other_user, fund, job_type, settings, path, body
):
    fund(user, 1000)
    client = client_for(user)
    before = ledger_snapshot()
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_wallet_lock, args=(user, locked, release))
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        response = client.post(path, body(other_user), format="json")
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join(30)
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["details"]["outcome"] == "not_applied"
    bound = settings.DATABASE_LOCK_TIMEOUT_SECONDS
    assert bound - 0.2 <= elapsed < bound + 2, elapsed
    assert ledger_snapshot() == before
    assert_all_invariants()
