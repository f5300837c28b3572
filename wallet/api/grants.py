"""Staff endpoint for grants: promotional points given to a user, optionally expiring.

Needs `wallet.grant_points`. Like an adjustment, a grant at or past the approval
threshold becomes an approval request that a second staff member decides
(`/api/v1/admin/approvals`). Writes follow `wallet.api.writes`.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from divine_whispers.api.idempotency import (
    IDEMPOTENCY_KEY_PARAMETER,
    reference_for,
)
from divine_whispers.api.permissions import has_perm
from wallet import services
from wallet.api.permissions import AuditPermissionDeniedMixin
from wallet.api.serializers import (
    ApprovalResponseSerializer,
    ApprovalSerializer,
    GrantInputSerializer,
    GrantResponseSerializer,
    LotSerializer,
    TransactionSerializer,
)
from wallet.api.writes import (
    AMOUNT_ERRORS,
    approval_or_booked,
    four_eyes_responses,
    validated,
    write_responses,
)
from wallet.permissions import APPROVE, GRANT


@extend_schema(tags=["admin"])
class AdminGrantViewSet(AuditPermissionDeniedMixin, viewsets.GenericViewSet):
    """Marketing and finance staff: grants of promotional points."""

    audited_actions = frozenset({"grants"})
    queryset = get_user_model().objects.all()
    lookup_value_regex = r"[0-9]+"
    permission_classes = [IsAuthenticated, has_perm(GRANT)]

    @extend_schema(
        summary="Grant promotional points to a user",
        description=f"Needs the `{GRANT}` permission. The points land in a promotional "
        "lot (expiring at `expires_at`, which must be in the future, or never), drawn "
        "before paid points. As for adjustments, a pending approval request "
        '(`202 {"approval"}`, kind `grant`) that another staff member with '
        f"`{APPROVE}` approves or rejects: an amount of at least "
        "`WALLET_APPROVAL_THRESHOLD` (default 10,000; 0 = off), a grant that with the "
        "credits its requester or this wallet got without a second person in "
        "`WALLET_APPROVAL_WINDOW_HOURS` reaches it, or any grant to a staff member's "
        "wallet. Nobody grants to their own wallet: 403 `self_dealing_forbidden`. "
        "Repeating the reference replays the grant or the request (200, "
        "`Idempotent-Replayed: true`).",
        request=GrantInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            **write_responses(
                GrantResponseSerializer,
                {
                    400: AMOUNT_ERRORS,
                    403: ["permission_denied", "self_dealing_forbidden"],
                    404: ["not_found"],
                    409: ["request_in_progress"],
                },
            ),
            **four_eyes_responses(
                "GrantReplay",
                GrantResponseSerializer,
                ApprovalResponseSerializer,
                "the grant and its lot as they read now",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def grants(self, request: Request, pk: str | None = None) -> Response:
        target = self.get_object()
        data = validated(GrantInputSerializer, request)
        result = services.grant(
            user=target.pk,
            amount=data["amount"],
            reason=data["reason"],
            expires_at=data.get("expires_at"),
            campaign=data.get("campaign", ""),
            actor=request.user,
            reference_id=reference_for(request, data.get("reference_id")),
        )
        return approval_or_booked(
            result,
            lambda approval: {"approval": ApprovalSerializer(approval).data},
            lambda booked: {
                "transaction": TransactionSerializer(booked.transaction).data,
                "lot": LotSerializer(booked.lot).data,
            },
        )
