"""The plain-function answers of balance and spend equal their serializers (which the
OpenAPI schema is generated from), on rows as the service returns them and as read back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job
from wallet import selectors, services
from wallet.api.representations import balance_data, job_data, transaction_data
from wallet.api.serializers import BalanceSerializer, JobSerializer, TransactionSerializer
from wallet.models import Transaction

pytestmark = pytest.mark.django_db


def _same_transaction(txn: Transaction, job_id: int | None) -> None:
    expected = dict(TransactionSerializer(txn, context={"job_id": job_id}).data)
    assert transaction_data(txn, job_id=job_id) == expected


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_functions_equal_the_serializers(user, other_user, fund, job_type, zone):
    fund(user, 500)
    spent = services.spend(user=user, job_type=job_type.code, reference_id="r-1")
    moved = services.transfer(sender=user, recipient=other_user, amount=7, description="hi")
    job = Job.objects.get(pk=spent.job.pk)
    job.started_at = job.finished_at = timezone.now() - timedelta(seconds=3)
    job.result = {"text": "ok", "n": [1, 2]}
    job.error = "none"
    with timezone.override(zone):
        _same_transaction(spent.transaction, spent.job.pk)
        _same_transaction(Transaction.objects.get(pk=spent.transaction.pk), spent.job.pk)
        for row in (moved.debit, moved.credit, Transaction.objects.filter(user=user).first()):
            _same_transaction(row, None)
        for instance in (spent.job, job):
            assert job_data(instance) == dict(JobSerializer(instance).data)
        wallet = selectors.wallet_for_user(user_id=user.pk)
        split = selectors.lot_split(wallet_id=wallet.pk)
        serialized = BalanceSerializer(wallet, context={"split": split}).data
        assert balance_data(wallet, split) == {
            **serialized,
            "expiring": [dict(entry) for entry in serialized["expiring"]],
        }


def test_api_answers_are_the_serializers_rendering(user, fund, job_type, client_for):
    fund(user, 100)
    client = client_for(user)
    spent = client.post("/api/v1/wallet/spend", {"job_type": job_type.code}, format="json")
    assert spent.status_code == 201
    body = spent.json()
    txn = Transaction.objects.get(pk=body["transaction"]["id"])
    job = Job.objects.select_related("job_type").get(pk=body["job"]["id"])
    assert body["transaction"] == TransactionSerializer(txn, context={"job_id": job.pk}).data
    assert body["job"] == JobSerializer(job).data
    balance = client.get("/api/v1/wallet/balance").json()
    wallet, split = selectors.balance_of_user(user_id=user.pk)
    assert balance == BalanceSerializer(wallet, context={"split": split}).data
