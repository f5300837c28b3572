"""Wallet endpoints for users, the payment service account and staff.

Each write view is the same three steps: an input serializer validates the body, one
service call acts (wallet/services.py — the only code that writes money), an output
serializer renders. Reads are scoped to the requesting user, so another user's
transaction is a 404.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from divine_whispers.api.idempotency import (
    IDEMPOTENCY_KEY_PARAMETER,
    created_or_replayed,
    reference_for,
)
from divine_whispers.api.pagination import AdminPagePagination, NewestFirstCursorPagination
from divine_whispers.api.permissions import has_perm
from divine_whispers.api.schema import error_responses
from wallet import selectors, services
from wallet.api.permissions import AuditPermissionDeniedMixin
from wallet.api.serializers import (
    AdjustInputSerializer,
    AdminWalletFilterSerializer,
    AdminWalletSerializer,
    ApprovalDecisionResponseSerializer,
    ApprovalFilterSerializer,
    ApprovalResponseSerializer,
    ApprovalSerializer,
    ApproveInputSerializer,
    BalanceSerializer,
    DepositInputSerializer,
    JobSerializer,
    RefundInputSerializer,
    RejectInputSerializer,
    SpendInputSerializer,
    SpendResponseSerializer,
    TransactionFilterSerializer,
    TransactionResponseSerializer,
    TransactionSerializer,
    TransferCreditSerializer,
    TransferInputSerializer,
    TransferResponseSerializer,
)
from wallet.models import ApprovalRequest, Transaction, Wallet

DEPOSIT_PERMISSION = "wallet.deposit_points"
ADJUST_PERMISSION = "wallet.adjust_points"
REFUND_PERMISSION = "wallet.refund_transaction"
VIEW_WALLET_PERMISSION = "wallet.view_wallet"
APPROVE_PERMISSION = "wallet.approve_adjustment"

AMOUNT_ERRORS = ["validation_error", "amount_too_large"]


def _write_responses(
    response_serializer, extra: dict[int, list[str]]
) -> dict[int, OpenApiResponse]:
    return {
        201: OpenApiResponse(response_serializer, description="Done."),
        200: OpenApiResponse(
            response_serializer,
            description="Idempotent replay: the original result, header "
            "`Idempotent-Replayed: true`; nothing changed.",
        ),
        **error_responses({**extra, 422: ["idempotency_key_reused"]}),
    }


def _validated(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema(tags=["wallet"])
class WalletViewSet(AuditPermissionDeniedMixin, viewsets.GenericViewSet):
    """The requesting user's wallet: balance, spend, transfer; deposit for payments."""

    audited_actions = frozenset({"deposit"})
    queryset = Wallet.objects.none()
    serializer_class = BalanceSerializer

    @extend_schema(
        summary="Your balance",
        description="A new user has a wallet with 0 points.",
        responses={200: BalanceSerializer, **error_responses()},
    )
    @action(detail=False, methods=["get"])
    def balance(self, request: Request) -> Response:
        wallet = selectors.wallet_for_user(user_id=request.user.pk)
        return Response(BalanceSerializer(wallet).data)

    @extend_schema(
        summary="Buy a job at its server-side price",
        description="Debits the job type's price and creates one `pending` job in the same "
        "DB transaction. `amount`, when sent, must equal the price (else `price_mismatch`).",
        request=SpendInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=_write_responses(
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
        data = _validated(SpendInputSerializer, request)
        result = services.spend(
            user=request.user,
            job_type=data["job_type"],
            reference_id=reference_for(request, data.get("reference_id")),
            expected_price=data.get("amount"),
            job_input=data.get("input"),
        )
        # Built only from the service's result: no query after the COMMIT.
        body = {
            "transaction": TransactionSerializer(
                result.transaction, context={"job_id": result.job.pk}
            ).data,
            "job": JobSerializer(result.job).data,
        }
        return created_or_replayed(body, replayed=result.replayed)

    @extend_schema(
        summary="Send points to another user",
        description="One `transfer_out`/`transfer_in` pair sharing a `transfer_id`; at most "
        "the smaller of the transfer and transaction limits.",
        request=TransferInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=_write_responses(
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
        data = _validated(TransferInputSerializer, request)
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
        description=f"Needs the `{DEPOSIT_PERMISSION}` permission. `reference_id` (or the "
        "Idempotency-Key header) is the payment's id: the same payment never credits twice.",
        request=DepositInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=_write_responses(
            TransactionResponseSerializer,
            {400: AMOUNT_ERRORS, 403: ["permission_denied"], 409: ["request_in_progress"]},
        ),
    )
    @action(
        detail=False,
        methods=["post"],
        permission_classes=[IsAuthenticated, has_perm(DEPOSIT_PERMISSION)],
    )
    def deposit(self, request: Request) -> Response:
        data = _validated(DepositInputSerializer, request)
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
    # Read-only actions that may read from the replica (divine_whispers/db_routing.py).
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


# --- Staff --------------------------------------------------------------------------


@extend_schema(tags=["admin"])
class AdminUserViewSet(AuditPermissionDeniedMixin, viewsets.GenericViewSet):
    """Finance staff: signed point adjustments with a written reason."""

    audited_actions = frozenset({"points"})
    queryset = get_user_model().objects.all()
    lookup_value_regex = r"[0-9]+"
    permission_classes = [IsAuthenticated, has_perm(ADJUST_PERMISSION)]

    @extend_schema(
        summary="Adjust a user's points (signed, with a reason)",
        description=f"Needs the `{ADJUST_PERMISSION}` permission. An amount whose magnitude "
        "is at least `WALLET_APPROVAL_THRESHOLD` (default 10,000; 0 = off) is not booked: "
        'it becomes a pending approval request (`202 {"approval"}`) that another staff '
        f"member with `{APPROVE_PERMISSION}` approves or rejects. A request that could "
        "not be booked now (the balance would go negative) is refused at once with 402. "
        "Repeating the reference replays the request (200, `Idempotent-Replayed: true`).",
        request=AdjustInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            **_write_responses(
                TransactionResponseSerializer,
                {
                    400: AMOUNT_ERRORS,
                    402: ["insufficient_balance"],
                    403: ["permission_denied"],
                    404: ["not_found"],
                    409: ["request_in_progress"],
                },
            ),
            200: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="AdjustReplay",
                    serializers=[TransactionResponseSerializer, ApprovalResponseSerializer],
                    resource_type_field_name=None,
                ),
                description="Idempotent replay: the original result (the booked "
                "transaction, or the approval request as it reads now), header "
                "`Idempotent-Replayed: true`; nothing changed.",
            ),
            202: OpenApiResponse(
                ApprovalResponseSerializer,
                description="Needs a second person: a pending approval request, nothing booked.",
            ),
        },
    )
    @action(detail=True, methods=["put"])
    def points(self, request: Request, pk: str | None = None) -> Response:
        target = self.get_object()
        data = _validated(AdjustInputSerializer, request)
        result = services.adjust(
            user=target.pk,
            amount=data["amount"],
            reason=data["reason"],
            actor=request.user,
            reference_id=reference_for(request, data.get("reference_id")),
        )
        if isinstance(result, services.ApprovalResult):
            body = {"approval": ApprovalSerializer(result.approval).data}
            if result.replayed:
                return created_or_replayed(body, replayed=True)
            return Response(body, status=status.HTTP_202_ACCEPTED)
        body = {"transaction": TransactionSerializer(result.transaction).data}
        return created_or_replayed(body, replayed=result.replayed)


@extend_schema(tags=["admin"])
class AdminWalletViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Support staff: every wallet, filterable by user, ordered by balance."""

    serializer_class = AdminWalletSerializer
    pagination_class = AdminPagePagination
    permission_classes = [IsAuthenticated, has_perm(VIEW_WALLET_PERMISSION)]
    queryset = Wallet.objects.none()
    # Read-only actions that may read from the replica (divine_whispers/db_routing.py).
    replica_actions = frozenset({"list"})

    def get_queryset(self) -> QuerySet[Wallet]:
        serializer = AdminWalletFilterSerializer(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        queryset = Wallet.objects.select_related("user")
        if "user_id" in params:
            queryset = queryset.filter(user_id=params["user_id"])
        if "username" in params:
            queryset = queryset.filter(user__username__iexact=params["username"])
        return queryset.order_by(params["ordering"], "id")

    @extend_schema(
        summary="All wallets (staff)",
        description=f"Needs the `{VIEW_WALLET_PERMISSION}` permission.",
        parameters=[AdminWalletFilterSerializer],
        responses={
            200: AdminWalletSerializer(many=True),
            **error_responses(
                {400: ["validation_error"], 403: ["permission_denied"], 404: ["not_found"]}
            ),
        },
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)


@extend_schema(tags=["admin"])
class AdminTransactionViewSet(AuditPermissionDeniedMixin, viewsets.GenericViewSet):
    """Support staff: refund a spend, fully or partly."""

    audited_actions = frozenset({"refund"})
    queryset = Transaction.objects.none()
    lookup_value_regex = r"[0-9]+"
    permission_classes = [IsAuthenticated, has_perm(REFUND_PERMISSION)]

    @extend_schema(
        summary="Refund a spend (full when amount is omitted)",
        description=f"Needs the `{REFUND_PERMISSION}` permission. Refunding a job's spend "
        "marks the job `refunded`.",
        request=RefundInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=_write_responses(
            TransactionResponseSerializer,
            {
                400: [*AMOUNT_ERRORS, "not_refundable", "refund_exceeds_original"],
                403: ["permission_denied"],
                404: ["not_found"],
                409: ["request_in_progress"],
            },
        ),
    )
    @action(detail=True, methods=["post"])
    def refund(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(RefundInputSerializer, request)
        result = services.refund(
            spend_txn=int(pk),
            amount=data.get("amount"),
            reason=data["reason"],
            actor=request.user,
            reference_id=reference_for(request, data.get("reference_id")),
        )
        body = {"transaction": TransactionSerializer(result.transaction).data}
        return created_or_replayed(body, replayed=result.replayed)


@extend_schema(tags=["admin"])
class AdminApprovalViewSet(
    AuditPermissionDeniedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Four-eyes approvals of large adjustments: the queue, and the decisions.

    Reading needs `wallet.adjust_points` (requesters follow their requests) or
    `wallet.approve_adjustment` (approvers work the queue); deciding needs
    `wallet.approve_adjustment`, and never on one's own request.
    """

    audited_actions = frozenset({"approve", "reject"})
    serializer_class = ApprovalSerializer
    pagination_class = AdminPagePagination
    queryset = ApprovalRequest.objects.none()
    lookup_value_regex = r"[0-9]+"
    permission_classes = [
        IsAuthenticated,
        has_perm(ADJUST_PERMISSION) | has_perm(APPROVE_PERMISSION),
    ]

    def get_permissions(self):
        if self.action in self.audited_actions:
            return [IsAuthenticated(), has_perm(APPROVE_PERMISSION)()]
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[ApprovalRequest]:
        queryset = ApprovalRequest.objects.order_by("-created_at", "-id")
        if self.action != "list":
            return queryset
        serializer = ApprovalFilterSerializer(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        if "status" in params:
            queryset = queryset.with_status(params["status"], timezone.now())
        if "user_id" in params:
            queryset = queryset.filter(user_id=params["user_id"])
        return queryset

    @extend_schema(
        summary="Approval requests, newest first (staff)",
        description=f"Needs `{ADJUST_PERMISSION}` or `{APPROVE_PERMISSION}`. `status` "
        "filters by what a request reads now (`expired` includes pending requests past "
        "their expiry).",
        parameters=[ApprovalFilterSerializer],
        responses={
            200: ApprovalSerializer(many=True),
            **error_responses(
                {400: ["validation_error"], 403: ["permission_denied"], 404: ["not_found"]}
            ),
        },
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="One approval request (staff)",
        responses={
            200: ApprovalSerializer,
            **error_responses({403: ["permission_denied"], 404: ["not_found"]}),
        },
    )
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Approve a request: the adjustment is booked now",
        description=f"Needs `{APPROVE_PERMISSION}`; not the requester's own request (403 "
        "`self_approval_forbidden`). Books the adjustment under the usual rules, exactly "
        "once: a balance that would go negative is 402 and the request stays pending; a "
        "request already decided or expired is 409 `approval_not_pending`.",
        request=ApproveInputSerializer,
        responses={
            201: ApprovalDecisionResponseSerializer,
            **error_responses(
                {
                    400: ["validation_error"],
                    402: ["insufficient_balance"],
                    403: ["permission_denied", "self_approval_forbidden"],
                    404: ["not_found"],
                    409: ["approval_not_pending"],
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        _validated(ApproveInputSerializer, request)
        decision = services.approve_adjustment(approval=int(pk), actor=request.user)
        body = {
            "approval": ApprovalSerializer(decision.approval).data,
            "transaction": TransactionSerializer(decision.transaction).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Reject a request, with a reason; nothing is booked",
        description=f"Needs `{APPROVE_PERMISSION}`; not the requester's own request.",
        request=RejectInputSerializer,
        responses={
            200: ApprovalResponseSerializer,
            **error_responses(
                {
                    400: ["validation_error"],
                    403: ["permission_denied", "self_approval_forbidden"],
                    404: ["not_found"],
                    409: ["approval_not_pending"],
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(RejectInputSerializer, request)
        decision = services.reject_adjustment(
            approval=int(pk), actor=request.user, reason=data["reason"]
        )
        return Response({"approval": ApprovalSerializer(decision.approval).data})
