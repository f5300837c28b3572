"""The balance answer's one-statement read agrees with the wallet and its lots read apart,
in every state a wallet can be in (no wallet yet, paid only, promotional with and without
an expiry, lots spent down to nothing)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from jobs.tests.factories import JobTypeFactory
from wallet import selectors, services
from wallet.models import Wallet
from wallet.tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def read_apart(user_id: int) -> tuple[tuple, selectors.LotSplit]:
    wallet = selectors.wallet_for_user(user_id=user_id)
    return (wallet.pk, wallet.user_id, wallet.balance, wallet.updated_at), selectors.lot_split(
        wallet_id=wallet.pk
    )


def read_at_once(user_id: int) -> tuple[tuple, selectors.LotSplit]:
    wallet, split = selectors.balance_of_user(user_id=user_id)
    return (wallet.pk, wallet.user_id, wallet.balance, wallet.updated_at), split


def test_a_new_user_gets_a_wallet_with_nothing_in_it(user):
    assert not Wallet.objects.filter(user=user).exists()
    wallet, split = selectors.balance_of_user(user_id=user.pk)
    assert (wallet.balance, split) == (0, selectors.LotSplit(0, 0, []))
    assert Wallet.objects.get(user=user).pk == wallet.pk


def test_paid_promotional_expiring_and_spent_down_lots(user, fund):
    marketer = StaffFactory(username="marketer")
    fund(user, 40)
    now = timezone.now()
    soon, later = now + timedelta(days=2), now + timedelta(days=9)
    for amount, expires_at in ((15, soon), (5, soon), (7, later), (3, None)):
        services.grant(
            user=user, amount=amount, reason="Welcome", expires_at=expires_at, actor=marketer
        )
    JobTypeFactory(code="small", price=20)
    services.spend(user=user, job_type="small", reference_id="s1")  # empties soonest lots

    together = read_at_once(user.pk)

    assert together == read_apart(user.pk)
    split = together[1]
    assert (split.paid, split.promotional, together[0][2]) == (40, 10, 50)
    assert split.expiring == [{"amount": 7, "expires_at": later}]


def test_one_query_compiled_once(user, fund, django_assert_num_queries, monkeypatch):
    fund(user, 10)
    selectors.balance_of_user(user_id=user.pk)  # compiled here (or earlier in the process)
    compiles = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiles.append(1) or original(self, *a, **k)
    )
    with django_assert_num_queries(1):
        wallet, split = selectors.balance_of_user(user_id=user.pk)
    assert compiles == []
    assert (wallet.balance, split.paid) == (10, 10)
