"""The hot-wallet spend race with separate Python processes instead of threads.

Each worker is a spawned interpreter with its own connection, so nothing in-process
(the GIL, a shared connection, a module-level lock) can be what keeps the ledger
right: only the database row lock can.
"""

from __future__ import annotations

import multiprocessing

import pytest
from django.db import connection

from jobs.models import Job
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Wallet
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.reliability import workers
from wallet.tests.reliability.invariants import assert_all_invariants

pytestmark = pytest.mark.django_db(transaction=True)

PROCESSES = 4
PRICE = 3


def run_hot_wallet(spends_per_process: int) -> dict[str, int]:
    attempts = PROCESSES * spends_per_process
    owner = UserFactory()
    JobTypeFactory(code="hot", price=PRICE)
    # Enough for about 90% of the attempts: both outcomes must occur.
    initial = PRICE * (attempts * 9 // 10) + 1
    services.deposit(user=owner, amount=initial, reference_id="hot-seed", actor=payment_account())
    db_name = connection.settings_dict["NAME"]
    connection.close()

    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(PROCESSES, initializer=workers.init, initargs=(db_name,)) as pool:
        reports = pool.map(workers.spend_many, [(owner.pk, "hot", spends_per_process)] * PROCESSES)

    totals: dict[str, int] = {}
    for report in reports:
        for outcome, n in report.items():
            totals[outcome] = totals.get(outcome, 0) + n
    assert set(totals) <= {"spent", "insufficient_balance"}, totals  # no crash, no deadlock
    assert sum(totals.values()) == attempts
    spent = totals.get("spent", 0)
    assert spent == min(attempts, initial // PRICE)  # every affordable spend, no more
    assert Wallet.objects.get(user=owner).balance == initial - PRICE * spent >= 0
    assert Job.objects.filter(user=owner).count() == spent
    assert_all_invariants()
    return totals


def test_hot_wallet_spends_from_several_processes():
    totals = run_hot_wallet(spends_per_process=75)  # 300 operations
    assert totals["insufficient_balance"] > 0


@pytest.mark.stress
def test_hot_wallet_spends_from_several_processes_stress():
    run_hot_wallet(spends_per_process=2_500)  # 10,000 operations
