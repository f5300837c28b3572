"""The customer's wallet endpoints: balance, spend, transfer, own transactions; deposit
for the payment service account.

Reads are scoped to the requesting user, so another user's transaction is a 404. Writes
follow `wallet.api.writes`: validate, one service call, render.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from divine_whispers.api.idempotency import (
    IDEMPOTENCY_KEY_PARAMETER,
    created_or_replayed,
    reference_for,
)
from divine_whispers.api.pagination import NewestFirstCursorPagination
from divine_whispers.api.permissions import has_perm
from divine_whispers.api.schema import error_responses
from wallet import selectors, services
from wallet.api.permissions import AuditPermissionDeniedMixin
from wallet.api.representations import balance_data, job_data, transaction_data
from wallet.api.serializers import (
    BalanceSerializer,
    DepositInputSerializer,
    SpendInputSerializer,
    SpendResponseSerializer,
    TransactionFilterSerializer,
    TransactionResponseSerializer,
    TransactionSerializer,
    TransferCreditSerializer,
    TransferInputSerializer,
    TransferResponseSerializer,
)
from wallet.api.writes import AMOUNT_ERRORS, validated, write_responses
from wallet.models import Transaction, Wallet
from wallet.permissions import DEPOSIT


@extend_schema(tags=["wallet"])
class WalletViewSet(AuditPermissionDeniedMixin, viewsets.GenericViewSet):
    """The requesting user's wallet: balance, spend, transfer; deposit for payments."""

    audited_actions = frozenset({"deposit"})
    queryset = Wallet.objects.none()
    serializer_class = BalanceSerializer

    @extend_schema(
        summary="Your balance",
        description="A new user has a wallet with 0 points. `paid` and `promotional` sum "
        "to `balance`; `expiring` lists when promotional points expire (at most 10 entries, "
        "soonest first; an entry in the past is waiting for the expiry job and can no "
        "longer be spent).",
        responses={200: BalanceSerializer, **error_responses()},
    )
    @action(detail=False, methods=["get"])
    def balance(self, request: Request) -> Response:
        wallet, split = selectors.balance_of_user(user_id=request.user.pk)
        # = BalanceSerializer(wallet, context={"split": split}).data
        return Response(balance_data(wallet, split))

    @extend_schema(
        summary="Buy a job at its server-side price",
        description="Debits the job type's price and creates one `pending` job in the same "
        "DB transaction. `amount`, when sent, must equal the price (else `price_mismatch`).",
        request=SpendInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=write_responses(
            SpendResponseSerializer,
            {
                400: [*AMOUNT_ERRORS, "price_mismatch", "inactive_job_type"],
                402: ["insufficient_balance"],
                409: ["request_in_progress"],
                429: ["velocity_limit_exceeded"],
            },
        ),
    )
    @action(detail=False, methods=["post"])
    def spend(self, request: Request) -> Response:
        data = validated(SpendInputSerializer, request)
        result = services.spend(
            user=request.user,
            job_type=data["job_type"],
            reference_id=reference_for(request, data.get("reference_id")),
            expected_price=data.get("amount"),
            job_input=data.get("input"),
        )
        # Built only from the service's result: no query after the COMMIT. The plain
        # functions equal TransactionSerializer / JobSerializer (SpendResponseSerializer).
        body = {
            "transaction": transaction_data(result.transaction, job_id=result.job.pk),
            "job": job_data(result.job),
        }
        return created_or_replayed(body, replayed=result.replayed)

    @extend_schema(
        summary="Send points to another user",
        description="One `transfer_out`/`transfer_in` pair sharing a `transfer_id`; at most "
        "the smaller of the transfer and transaction limits.",
        request=TransferInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=write_responses(
            TransferResponseSerializer,
            {
                400: [*AMOUNT_ERRORS, "self_transfer", "unknown_recipient"],
                402: ["insufficient_balance"],
                409: ["request_in_progress"],
                429: ["velocity_limit_exceeded"],
            },
        ),
    )
    @action(detail=False, methods=["post"])
    def transfer(self, request: Request) -> Response:
        data = validated(TransferInputSerializer, request)
        result = services.transfer(
            sender=request.user,
            recipient=data["to_user_id"],
            amount=data["amount"],
            reference_id=reference_for(request, data.get("reference_id")),
            description=data.get("description", ""),
        )
        body = {
            "debit": TransactionSerializer(result.debit).data,
            "credit": TransferCreditSerializer(result.credit).data,
        }
        return created_or_replayed(body, replayed=result.replayed)

    @extend_schema(
        summary="Credit points after a payment (payment service account)",
        description=f"Needs the `{DEPOSIT}` permission, which only the payment service "
        "account holds: a staff member (superusers included) is refused with 403 "
        "`permission_denied`, a deposit into the caller's own wallet with 403 "
        "`self_dealing_forbidden`. `reference_id` (or the Idempotency-Key header) is the "
        "payment's id: the same payment never credits twice.",
        request=DepositInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=write_responses(
            TransactionResponseSerializer,
            {
                400: AMOUNT_ERRORS,
                403: ["permission_denied", "self_dealing_forbidden"],
                409: ["request_in_progress"],
            },
        ),
    )
    @action(
        detail=False,
        methods=["post"],
        permission_classes=[IsAuthenticated, has_perm(DEPOSIT)],
    )
    def deposit(self, request: Request) -> Response:
        data = validated(DepositInputSerializer, request)
        result = services.deposit(
            user=data["user_id"],
            amount=data["amount"],
            reference_id=reference_for(request, data.get("reference_id")),
            actor=request.user,
            description=data.get("description", ""),
        )
        body = {"transaction": TransactionSerializer(result.transaction).data}
        return created_or_replayed(body, replayed=result.replayed)


@extend_schema(tags=["wallet"])
class TransactionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The requesting user's ledger rows, newest first."""

    serializer_class = TransactionSerializer
    pagination_class = NewestFirstCursorPagination
    queryset = Transaction.objects.none()
    lookup_value_regex = r"[0-9]+"
    # Read-only actions that may read from the replica (divine_whispers/db/routing.py).
    replica_actions = frozenset({"list", "retrieve"})

    def get_queryset(self) -> QuerySet[Transaction]:
        filters = {}
        if self.action == "list":
            serializer = TransactionFilterSerializer(data=self.request.query_params)
            serializer.is_valid(raise_exception=True)
            filters = serializer.validated_data
        return selectors.transactions_for_user(
            user_id=self.request.user.pk,
            txn_type=filters.get("type"),
            status=filters.get("status"),
        ).select_related("job")

    @extend_schema(
        summary="Your transactions, newest first (cursor-paginated)",
        parameters=[TransactionFilterSerializer],
        responses={
            200: TransactionSerializer(many=True),
            **error_responses({400: ["validation_error"]}),
        },
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="One of your transactions",
        responses={200: TransactionSerializer, **error_responses({404: ["not_found"]})},
    )
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return super().retrieve(request, *args, **kwargs)
