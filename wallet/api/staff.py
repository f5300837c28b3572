"""Staff endpoints of the wallet: adjustments (with four-eyes approvals), refunds, and
the list of every wallet. Each needs its permission from `wallet.permissions`.

The finance report has its own module (`wallet.api.reports`). Writes follow
`wallet.api.writes`: validate, one service call, render.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
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
from divine_whispers.api.pagination import AdminPagePagination
from divine_whispers.api.permissions import has_perm
from divine_whispers.api.schema import error_responses
from wallet import services
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
    RefundInputSerializer,
    RejectInputSerializer,
    TransactionResponseSerializer,
    TransactionSerializer,
)
from wallet.api.writes import (
    AMOUNT_ERRORS,
    approval_or_booked,
    four_eyes_responses,
    validated,
    write_responses,
)
from wallet.models import ApprovalRequest, Transaction, Wallet
from wallet.permissions import ADJUST, APPROVE, REFUND, VIEW_WALLET


@extend_schema(tags=["admin"])
class AdminUserViewSet(AuditPermissionDeniedMixin, viewsets.GenericViewSet):
    """Finance staff: signed point adjustments with a written reason."""

    audited_actions = frozenset({"points"})
    queryset = get_user_model().objects.all()
    lookup_value_regex = r"[0-9]+"
    permission_classes = [IsAuthenticated, has_perm(ADJUST)]

    @extend_schema(
        summary="Adjust a user's points (signed, with a reason)",
        description=f"Needs the `{ADJUST}` permission. Not booked but a pending approval "
        'request (`202 {"approval"}`) that another staff member with '
        f"`{APPROVE}` approves or rejects: an amount whose magnitude is at least "
        "`WALLET_APPROVAL_THRESHOLD` (default 10,000; 0 = off); a credit that, with the "
        "positive adjustments the requester or this wallet got without a second person in "
        "the last `WALLET_APPROVAL_WINDOW_HOURS` (default 24), reaches that threshold; and "
        "any change to a staff member's wallet (a superuser approves it). Your own wallet: "
        "403 `self_dealing_forbidden`. A request that could not be booked now (the balance "
        "would go negative) is refused at once with 402. Repeating the reference replays "
        "the request (200, `Idempotent-Replayed: true`).",
        request=AdjustInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            **write_responses(
                TransactionResponseSerializer,
                {
                    400: AMOUNT_ERRORS,
                    402: ["insufficient_balance"],
                    403: ["permission_denied", "self_dealing_forbidden"],
                    404: ["not_found"],
                    409: ["request_in_progress"],
                },
            ),
            **four_eyes_responses(
                "AdjustReplay",
                TransactionResponseSerializer,
                ApprovalResponseSerializer,
                "the booked transaction",
            ),
        },
    )
    @action(detail=True, methods=["put"])
    def points(self, request: Request, pk: str | None = None) -> Response:
        target = self.get_object()
        data = validated(AdjustInputSerializer, request)
        result = services.adjust(
            user=target.pk,
            amount=data["amount"],
            reason=data["reason"],
            actor=request.user,
            reference_id=reference_for(request, data.get("reference_id")),
        )
        return approval_or_booked(
            result,
            lambda approval: {"approval": ApprovalSerializer(approval).data},
            lambda booked: {"transaction": TransactionSerializer(booked.transaction).data},
        )


@extend_schema(tags=["admin"])
class AdminWalletViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Support staff: every wallet, filterable by user, ordered by balance."""

    serializer_class = AdminWalletSerializer
    pagination_class = AdminPagePagination
    permission_classes = [IsAuthenticated, has_perm(VIEW_WALLET)]
    queryset = Wallet.objects.none()
    # Read-only actions that may read from the replica (divine_whispers/db/routing.py).
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
        description=f"Needs the `{VIEW_WALLET}` permission.",
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
    permission_classes = [IsAuthenticated, has_perm(REFUND)]

    @extend_schema(
        summary="Refund a spend (full when amount is omitted)",
        description=f"Needs the `{REFUND}` permission. Refunding a job's spend "
        "marks the job `refunded`. Never into your own wallet, and into a staff member's "
        "only by a superuser (403 `self_dealing_forbidden`).",
        request=RefundInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=write_responses(
            TransactionResponseSerializer,
            {
                400: [*AMOUNT_ERRORS, "not_refundable", "refund_exceeds_original"],
                403: ["permission_denied", "self_dealing_forbidden"],
                404: ["not_found"],
                409: ["request_in_progress"],
            },
        ),
    )
    @action(detail=True, methods=["post"])
    def refund(self, request: Request, pk: str | None = None) -> Response:
        data = validated(RefundInputSerializer, request)
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
        has_perm(ADJUST) | has_perm(APPROVE),
    ]

    def get_permissions(self):
        if self.action in self.audited_actions:
            return [IsAuthenticated(), has_perm(APPROVE)()]
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
        description=f"Needs `{ADJUST}` or `{APPROVE}`. `status` "
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
        description=f"Needs `{APPROVE}`; not the requester's own request (403 "
        "`self_approval_forbidden`), not a request for your own wallet, and for a staff "
        "member's wallet only a superuser (403 `self_dealing_forbidden`). Books the "
        "adjustment under the usual rules, exactly once: a balance that would go negative "
        "is 402 and the request stays pending; a request already decided or expired is 409 "
        "`approval_not_pending`.",
        request=ApproveInputSerializer,
        responses={
            201: ApprovalDecisionResponseSerializer,
            **error_responses(
                {
                    400: ["validation_error"],
                    402: ["insufficient_balance"],
                    403: [
                        "permission_denied",
                        "self_approval_forbidden",
                        "self_dealing_forbidden",
                    ],
                    404: ["not_found"],
                    409: ["approval_not_pending"],
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        validated(ApproveInputSerializer, request)
        decision = services.approve_adjustment(approval=int(pk), actor=request.user)
        body = {
            "approval": ApprovalSerializer(decision.approval).data,
            "transaction": TransactionSerializer(decision.transaction).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Reject a request, with a reason; nothing is booked",
        description=f"Needs `{APPROVE}`; not the requester's own request, not one for "
        "your own wallet, and for a staff member's wallet only a superuser.",
        request=RejectInputSerializer,
        responses={
            200: ApprovalResponseSerializer,
            **error_responses(
                {
                    400: ["validation_error"],
                    403: [
                        "permission_denied",
                        "self_approval_forbidden",
                        "self_dealing_forbidden",
                    ],
                    404: ["not_found"],
                    409: ["approval_not_pending"],
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        data = validated(RejectInputSerializer, request)
        decision = services.reject_adjustment(
            approval=int(pk), actor=request.user, reason=data["reason"]
        )
        return Response({"approval": ApprovalSerializer(decision.approval).data})
