"""Real threads writing to four wallets at once: every chain stays intact and verifiable.

Also runs `manage.py verify_ledger` as a real process against the committed data, so the
exit codes an operator relies on are observed, not assumed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count
from django.test import override_settings

from audit.models import AuditEvent
from audit.services import record_system_event
from audit.tests.helpers import sql
from divine_whispers.errors import InsufficientBalance
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, TransactionType, Wallet
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, run_concurrently
from wallet.verification import verify_ledger

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
THREADS, OPERATIONS = 16, 50


def _writer(users: list, staff, thread: int) -> int:
    """50 mixed operations over the four wallets; returns how many were refused."""
    rng = random.Random(thread)
    refused, my_spends = 0, []
    for i in range(OPERATIONS):
        me, other = rng.sample(users, 2)
        kind = i % 6
        try:
            if kind == 0:
                services.deposit(
                    user=me,
                    amount=rng.randint(1, 60),
                    reference_id=f"d-{thread}-{i}",
                    actor=payment_account(),
                )
            elif kind == 1:
                my_spends.append(services.spend(user=me, job_type="fortune").transaction)
            elif kind in (2, 3):
                services.transfer(sender=me, recipient=other, amount=rng.randint(1, 80))
            elif kind == 4:
                services.adjust(user=me, amount=rng.choice([-3, 4]), reason="ops", actor=staff)
            elif my_spends:
                services.refund(spend_txn=my_spends.pop(), amount=5, reason="partial", actor=staff)
        except InsufficientBalance:
            refused += 1
    return refused


def test_16_threads_x_50_operations_keep_every_chain_intact():
    staff = StaffFactory()
    users = [UserFactory() for _ in range(4)]
    JobTypeFactory(code="fortune", price=15)
    for user in users:
        services.deposit(
            user=user, amount=500, reference_id=f"seed-{user.pk}", actor=payment_account()
        )

    with override_settings(WALLET_VELOCITY_LIMIT=10**6):
        results = run_concurrently(lambda t: _writer(users, staff, t), THREADS)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert_ledger_consistent()
    report = verify_ledger()
    assert report.clean, [finding.line() for finding in report.findings[:20]]
    per_chain = dict(AuditEvent.objects.values_list("chain").annotate(n=Count("id")))
    assert len(per_chain) == 4 and min(per_chain.values()) > 50
    kinds = set(Transaction.objects.values_list("type", flat=True))
    assert {TransactionType.TRANSFER_IN, TransactionType.REFUND, TransactionType.SPEND} <= kinds


def _verify_process() -> subprocess.CompletedProcess:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url}
    command = [sys.executable, "manage.py", "verify_ledger", "--json", "--no-progress"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_verify_ledger_process_exit_codes():
    alice, bob = UserFactory(), UserFactory()
    services.deposit(user=alice, amount=100, reference_id="p1", actor=payment_account())
    services.transfer(sender=alice, recipient=bob, amount=40)

    clean = _verify_process()
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["clean"] is True

    wallet = Wallet.objects.get(user=bob)
    sql("UPDATE wallet_wallet SET balance = 1000 WHERE id = %s", [wallet.pk])
    tampered = _verify_process()
    assert tampered.returncode == 1
    (finding,) = json.loads(tampered.stdout)["findings"]
    assert (finding["check"], finding["wallet_id"], finding["expected"], finding["found"]) == (
        "balance",
        wallet.pk,
        40,
        1000,
    )


def test_concurrent_system_events_form_one_intact_chain():
    results = run_concurrently(
        lambda t: [
            record_system_event(action="settings.changed", metadata={"t": t, "i": i}).pk
            for i in range(5)
        ],
        8,
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert AuditEvent.objects.filter(chain="system").count() == 40
    report = verify_ledger()
    assert report.clean, [finding.line() for finding in report.findings]
