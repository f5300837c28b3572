"""Wallet API serializers: strict inputs (no coercion, unknown fields refused) and the
contract's transaction representation."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from rest_framework import serializers

from divine_whispers.api.fields import (
    JSONObjectField,
    ReferenceField,
    StrictAmountField,
    StrictIdField,
    StrictTextField,
    max_transfer_amount,
)
from divine_whispers.api.serializers import FieldsOnceMixin, StrictInputSerializer
from jobs.api.serializers import JobSerializer
from wallet.models import Transaction, TransactionStatus, TransactionType, Wallet
from wallet.validators import DESCRIPTION_MAX_LENGTH, REASON_MAX_LENGTH

JOB_TYPE_MAX_LENGTH = 64


# --- Output ---------------------------------------------------------------------------


class TransactionSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    """The contract's transaction: `amount` is signed."""

    user_id = serializers.IntegerField(read_only=True)
    related_transaction_id = serializers.IntegerField(read_only=True, allow_null=True)
    job_id = serializers.SerializerMethodField()

    class Meta:
        model = Transaction
        fields = [
            "id",
            "user_id",
            "type",
            "amount",
            "status",
            "balance_after",
            "reference_id",
            "description",
            "related_transaction_id",
            "transfer_id",
            "job_id",
            "created_at",
        ]
        read_only_fields = fields

    def get_job_id(self, txn: Transaction) -> int | None:
        """Only a spend has a job. A write response passes its id in the context, from
        the service's result, so that no query runs after the COMMIT (a lost connection
        there would turn an applied change into an error); lists use select_related."""
        if txn.type != TransactionType.SPEND:
            return None
        if "job_id" in self.context:
            return self.context["job_id"]
        try:
            return txn.job.pk
        except ObjectDoesNotExist:
            return None


class TransferCreditSerializer(TransactionSerializer):
    """The recipient's `transfer_in` row as its sender sees it: without the recipient's
    balance (`balance_after` is null), which would otherwise cost one point to learn.
    The recipient sees the row in full in their own history."""

    balance_after = serializers.SerializerMethodField()

    def get_balance_after(self, txn: Transaction) -> int | None:
        return None


class BalanceSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Wallet
        fields = ["user_id", "balance", "updated_at"]
        read_only_fields = fields


class AdminWalletSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.get_username", read_only=True)

    class Meta:
        model = Wallet
        fields = ["id", "user_id", "username", "balance", "created_at", "updated_at"]
        read_only_fields = fields


class TransactionResponseSerializer(serializers.Serializer):
    transaction = TransactionSerializer()


class SpendResponseSerializer(serializers.Serializer):
    transaction = TransactionSerializer()
    job = JobSerializer()


class TransferResponseSerializer(serializers.Serializer):
    debit = TransactionSerializer(help_text="The sender's transfer_out row (negative).")
    credit = TransferCreditSerializer(
        help_text="The recipient's transfer_in row (positive); `balance_after` is null: "
        "the sender never learns the recipient's balance."
    )


# --- Input ------------------------------------------------------------------------------


class TransactionFilterSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=TransactionType.choices, required=False)
    status = serializers.ChoiceField(choices=TransactionStatus.choices, required=False)


class AdminWalletFilterSerializer(serializers.Serializer):
    ORDERINGS = ["balance", "-balance", "id", "-id"]

    user_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    username = serializers.CharField(required=False, max_length=150)
    ordering = serializers.ChoiceField(choices=ORDERINGS, required=False, default="-balance")


class SpendInputSerializer(StrictInputSerializer):
    job_type = StrictTextField(max_length=JOB_TYPE_MAX_LENGTH, help_text="A job type code.")
    amount = StrictAmountField(
        required=False,
        help_text="Optional: the price the client expects; a different price is 400 "
        "`price_mismatch`. The price charged is always the job type's.",
    )
    reference_id = ReferenceField(required=False)
    input = JSONObjectField(
        required=False, help_text="Optional JSON object (≤ 4 KiB) given to the job's handler."
    )


class TransferInputSerializer(StrictInputSerializer):
    to_user_id = StrictIdField()
    amount = StrictAmountField(maximum=max_transfer_amount)
    reference_id = ReferenceField(required=False)
    description = StrictTextField(max_length=DESCRIPTION_MAX_LENGTH, required=False)


class DepositInputSerializer(StrictInputSerializer):
    user_id = StrictIdField(help_text="The user whose wallet is credited.")
    amount = StrictAmountField()
    reference_id = ReferenceField(
        required=False,
        help_text="The payment's id. Required here or in the Idempotency-Key header.",
    )
    description = StrictTextField(max_length=DESCRIPTION_MAX_LENGTH, required=False)

    def validate_user_id(self, value: int) -> int:
        if not get_user_model().objects.filter(pk=value).exists():
            raise serializers.ValidationError("No such user.", code="invalid")
        return value


class AdjustInputSerializer(StrictInputSerializer):
    amount = StrictAmountField(signed=True, help_text="Signed, non-zero.")
    reason = StrictTextField(max_length=REASON_MAX_LENGTH)
    reference_id = ReferenceField(required=False)


class RefundInputSerializer(StrictInputSerializer):
    amount = StrictAmountField(required=False, help_text="Omit for a full refund.")
    reason = StrictTextField(max_length=REASON_MAX_LENGTH)
    reference_id = ReferenceField(required=False)
