"""CompiledQuery: the ORM's own SQL compiled once, the ORM's own instances back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from divine_whispers.db.compiled import CompiledQuery
from jobs.models import Job
from wallet import services
from wallet.models import Transaction, Wallet

pytestmark = pytest.mark.django_db

JOB_WITH_TYPE = CompiledQuery(
    lambda pk, since: Job.objects.select_related("job_type").filter(pk=pk, created_at__gte=since),
    pk=-(2**62) - 3,
    since=timezone.now() - timedelta(days=10**5),
)


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_same_instances_as_the_orm_with_select_related(user, fund, job_type):
    fund(user, 500)
    _, job = services.spend(user=user, job_type="fortune", job_input={"q": "love?"})
    since = timezone.now() - timedelta(hours=1)
    got = JOB_WITH_TYPE.first(pk=job.pk, since=since)
    expected = Job.objects.select_related("job_type").get(pk=job.pk)
    assert _fields(got) == _fields(expected)  # JSON input converted like the ORM does
    assert _fields(got.job_type) == _fields(expected.job_type)
    assert not got._state.adding and got._state.db == "default"
    assert JOB_WITH_TYPE.first(pk=job.pk, since=timezone.now() + timedelta(hours=1)) is None
    assert JOB_WITH_TYPE.first(pk=10**12, since=since) is None


def test_compiled_once_and_one_query(user, fund, django_assert_num_queries, monkeypatch):
    fund(user, 70)
    Wallet.objects.for_user(user.pk)  # compiled here (or earlier in the process)
    compiles = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiles.append(1) or original(self, *a, **k)
    )
    with django_assert_num_queries(1):
        wallet = Wallet.objects.for_user(user.pk)
    assert compiles == []
    assert _fields(wallet) == _fields(Wallet.objects.get(user=user))


def test_first_use_of_a_wallet_still_creates_it(user):
    assert Wallet.objects.for_user(user.pk).balance == 0
    assert Wallet.objects.filter(user=user).count() == 1


def test_a_placeholder_missing_from_the_query_is_refused():
    query = CompiledQuery(lambda pk, other: Transaction.objects.filter(pk=pk), pk=-5, other=-6)
    with pytest.raises(ValueError, match="other"):
        query.first(pk=1, other=2)


AMOUNTS_OF_USER = CompiledQuery(
    lambda user_id: (
        Transaction.objects.filter(user_id=user_id).values_list("type", "created_at").order_by("id")
    ),
    user_id=-(2**62) - 5,
)


def test_rows_are_the_values_list_rows_compiled_once(user, fund, monkeypatch):
    fund(user, 70)
    fund(user, 30)
    expected = list(
        Transaction.objects.filter(user_id=user.pk).values_list("type", "created_at").order_by("id")
    )
    assert AMOUNTS_OF_USER.rows(user_id=user.pk) == expected  # datetimes converted as the ORM
    compiles = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiles.append(1) or original(self, *a, **k)
    )
    assert AMOUNTS_OF_USER.rows(user_id=user.pk) == expected
    assert AMOUNTS_OF_USER.rows(user_id=10**12) == []
    assert compiles == []
