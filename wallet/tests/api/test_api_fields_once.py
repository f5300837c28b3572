"""FieldsOnceMixin: fields built once per class, output identical to DRF's own rendering,
and method fields that see the serializer in use (its context), not the shared template."""

from __future__ import annotations

import copy

import pytest
from rest_framework import serializers

from divine_whispers.api.serializers import FieldsOnceMixin
from jobs.api.serializers import JobSerializer
from wallet import services
from wallet.api.serializers import TransactionSerializer

pytestmark = pytest.mark.django_db


def _generic(serializer_class, instance) -> dict:
    """What DRF itself renders: a plain ModelSerializer with the same declarations."""
    body = copy.deepcopy(serializer_class._declared_fields)
    body.update({k: v for k, v in vars(serializer_class).items() if k == "Meta" or k[:4] == "get_"})
    plain = type("Plain", (serializers.ModelSerializer,), body)
    return dict(plain(instance).data)


def test_rendering_equals_drfs_own_for_spend_transfer_and_job(user, other_user, fund, job_type):
    fund(user, 500)
    spent = services.spend(user=user, job_type="fortune", reference_id="r-1")
    moved = services.transfer(sender=user, recipient=other_user, amount=7, description="hi")
    for txn in (spent.transaction, moved.debit, moved.credit):
        assert dict(TransactionSerializer(txn).data) == _generic(TransactionSerializer, txn)
    assert dict(JobSerializer(spent.job).data) == _generic(JobSerializer, spent.job)


def test_fields_are_built_once_per_class():
    first = TransactionSerializer().fields
    assert TransactionSerializer().fields is first
    assert JobSerializer().fields is not first


def test_method_fields_see_the_serializer_in_use():
    class Echo(FieldsOnceMixin, serializers.Serializer):
        tag = serializers.SerializerMethodField()

        def get_tag(self, obj) -> str:
            return f"{self.context.get('tag')}:{obj}"

    assert Echo("a", context={"tag": "one"}).data == {"tag": "one:a"}
    assert Echo("b", context={"tag": "two"}).data == {"tag": "two:b"}
    assert Echo("c").data == {"tag": "None:c"}
