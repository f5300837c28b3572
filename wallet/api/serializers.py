"""Wallet API serializers: strict inputs (no coercion, unknown fields refused) and the
contract's transaction representation."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from divine_whispers.api.fields import (
    JSONObjectField,
    QueryIdField,
    ReferenceField,
    StrictAmountField,
    StrictIdField,
    StrictTextField,
    UsernameFilterField,
)
from divine_whispers.api.serializers import (
    FieldsOnceMixin,
    QueryFilterSerializer,
    StrictInputSerializer,
)
from divine_whispers.errors import UnknownRecipient
from divine_whispers.money import (
    CAMPAIGN_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    REASON_MAX_LENGTH,
    max_transfer_amount,
)
from jobs.models import Job
from wallet.api.fields import JobTypeCodeField
from wallet.models import (
    ApprovalRequest,
    ApprovalStatus,
    Lot,
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
)

JOB_TYPE_MAX_LENGTH = 64


# --- Output ---------------------------------------------------------------------------


class JobSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    job_type = serializers.CharField(source="job_type.code", read_only=True)
    transaction_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "user_id",
            "job_type",
            "status",
            "points_used",
            "input",
            "result",
            "error",
            "transaction_id",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


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


class ExpiringSerializer(serializers.Serializer):
    amount = serializers.IntegerField(read_only=True, min_value=1)
    expires_at = serializers.DateTimeField(read_only=True)


class BalanceSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    """The balance, split into paid and promotional points (context `split`: a
    `selectors.LotSplit`), with the next expiries of the promotional ones."""

    user_id = serializers.IntegerField(read_only=True)
    paid = serializers.SerializerMethodField()
    promotional = serializers.SerializerMethodField()
    expiring = serializers.SerializerMethodField()

    class Meta:
        model = Wallet
        fields = ["user_id", "balance", "paid", "promotional", "expiring", "updated_at"]
        read_only_fields = fields

    def get_paid(self, wallet: Wallet) -> int:
        return self.context["split"].paid

    def get_promotional(self, wallet: Wallet) -> int:
        return self.context["split"].promotional

    @extend_schema_field(ExpiringSerializer(many=True))
    def get_expiring(self, wallet: Wallet) -> list[dict]:
        return ExpiringSerializer(self.context["split"].expiring, many=True).data


class LotSerializer(serializers.ModelSerializer):
    """A lot: where points came from (`source_transaction_id`) and what is left."""

    source_transaction_id = serializers.IntegerField(source="source_id", read_only=True)

    class Meta:
        model = Lot
        fields = [
            "id",
            "kind",
            "amount",
            "remaining",
            "expires_at",
            "campaign",
            "source_transaction_id",
            "created_at",
        ]
        read_only_fields = fields


class GrantResponseSerializer(serializers.Serializer):
    transaction = TransactionSerializer()
    lot = LotSerializer()


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


class TransactionFilterSerializer(QueryFilterSerializer):
    type = serializers.ChoiceField(choices=TransactionType.choices, required=False)
    status = serializers.ChoiceField(choices=TransactionStatus.choices, required=False)


class AdminWalletFilterSerializer(QueryFilterSerializer):
    ORDERINGS = ["balance", "-balance", "id", "-id"]

    user_id = QueryIdField(required=False)
    username = UsernameFilterField(required=False)
    ordering = serializers.ChoiceField(choices=ORDERINGS, required=False, default="-balance")


class SpendInputSerializer(StrictInputSerializer):
    job_type = JobTypeCodeField(
        max_length=JOB_TYPE_MAX_LENGTH,
        help_text="A job type code (`GET /job-types` lists the active ones).",
    )
    amount = StrictAmountField(
        required=False,
        help_text="Optional: the price the client expects; a different price is 400 "
        "`price_mismatch`. The price charged is always the job type's.",
    )
    reference_id = ReferenceField(required=False)
    input = JSONObjectField(
        required=False,
        help_text="Optional JSON object given to the job's handler: at most 4096 bytes "
        "as JSON, no NUL character in any key or string (else 400 `validation_error`).",
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
        # A well-formed id of nobody is the business refusal transfers use too (400
        # `unknown_recipient`), not a malformed request: no schema can list the users.
        if not get_user_model().objects.filter(pk=value).exists():
            raise UnknownRecipient(user_id=value)
        return value


class AdjustInputSerializer(StrictInputSerializer):
    amount = StrictAmountField(signed=True, help_text="Signed, non-zero.")
    reason = StrictTextField(max_length=REASON_MAX_LENGTH, blank=False)
    reference_id = ReferenceField(required=False)


class GrantInputSerializer(StrictInputSerializer):
    amount = StrictAmountField()
    reason = StrictTextField(max_length=REASON_MAX_LENGTH, blank=False)
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When the points expire; must be in the future (else 400 "
        "`validation_error`). Omit or null: they never expire.",
    )
    campaign = StrictTextField(max_length=CAMPAIGN_MAX_LENGTH, required=False)
    reference_id = ReferenceField(required=False)


class RefundInputSerializer(StrictInputSerializer):
    amount = StrictAmountField(required=False, help_text="Omit for a full refund.")
    reason = StrictTextField(max_length=REASON_MAX_LENGTH, blank=False)
    reference_id = ReferenceField(required=False)


# --- Four-eyes approvals ------------------------------------------------------------------


class ApprovalSerializer(serializers.ModelSerializer):
    """An approval request as the contract shows it; `status` is what it reads now
    (a pending request past `expires_at` reads `expired`)."""

    status = serializers.ChoiceField(
        choices=ApprovalStatus.choices, source="effective_status", read_only=True
    )
    user_id = serializers.IntegerField(read_only=True)
    requested_by = serializers.IntegerField(source="requested_by_id", read_only=True)
    decided_by = serializers.IntegerField(source="decided_by_id", read_only=True, allow_null=True)
    transaction_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "kind",
            "status",
            "user_id",
            "amount",
            "reason",
            "grant_expires_at",
            "campaign",
            "reference_id",
            "requested_by",
            "decided_by",
            "decided_at",
            "decision_reason",
            "transaction_id",
            "expires_at",
            "created_at",
        ]
        read_only_fields = fields


class ApprovalResponseSerializer(serializers.Serializer):
    approval = ApprovalSerializer()


class ApprovalDecisionResponseSerializer(serializers.Serializer):
    approval = ApprovalSerializer()
    transaction = TransactionSerializer(
        help_text="The adjustment (or grant) booked by the approval."
    )


class ApprovalFilterSerializer(QueryFilterSerializer):
    status = serializers.ChoiceField(choices=ApprovalStatus.choices, required=False)
    user_id = QueryIdField(required=False)


class ApproveInputSerializer(StrictInputSerializer):
    """Approving needs no input: the request says everything that will be booked."""


class RejectInputSerializer(StrictInputSerializer):
    reason = StrictTextField(
        max_length=REASON_MAX_LENGTH, blank=False, help_text="Why it is rejected."
    )
