"""What every write view of the wallet API shares: input validation and documented responses.

Each write view is the same three steps: an input serializer validates the body
(`validated`), one service call acts (`wallet.services`, the only code that writes
money), an output serializer renders. `write_responses` documents the outcomes every
idempotent write has (201 done, 200 replayed, 422 reference reused) beside its own errors.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from divine_whispers.api.idempotency import created_or_replayed
from divine_whispers.api.schema import error_responses

AMOUNT_ERRORS = ["validation_error", "amount_too_large"]


def write_responses(response_serializer, extra: dict[int, list[str]]) -> dict[int, OpenApiResponse]:
    return {
        201: OpenApiResponse(response_serializer, description="Done."),
        200: OpenApiResponse(
            response_serializer,
            description="Idempotent replay: the original result, header "
            "`Idempotent-Replayed: true`; nothing changed.",
        ),
        **error_responses({**extra, 422: ["idempotency_key_reused"]}),
    }


def validated(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def four_eyes_responses(
    name: str, booked_serializer, approval_serializer, booked: str
) -> dict[int, OpenApiResponse]:
    """The answers of a write that a second person may have to approve: 200 (a replay of
    the booking or of the request) and 202 (a pending request, nothing booked)."""
    return {
        200: OpenApiResponse(
            PolymorphicProxySerializer(
                component_name=name,
                serializers=[booked_serializer, approval_serializer],
                resource_type_field_name=None,
            ),
            description=f"Idempotent replay: the original result ({booked}, or the approval "
            "request as it reads now), header `Idempotent-Replayed: true`; nothing changed.",
        ),
        202: OpenApiResponse(
            approval_serializer,
            description="Needs a second person: a pending approval request, nothing booked.",
        ),
    }


def approval_or_booked(result, approval_body, booked_body) -> Response:
    """A four-eyes write's answer: 202 with the new request, 201 with what was booked, or
    200 replaying either. `approval_body(approval)` / `booked_body(result)` render them."""
    if hasattr(result, "approval"):
        body = approval_body(result.approval)
        if result.replayed:
            return created_or_replayed(body, replayed=True)
        return Response(body, status=status.HTTP_202_ACCEPTED)
    return created_or_replayed(booked_body(result), replayed=result.replayed)
