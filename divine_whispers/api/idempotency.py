"""Idempotency over HTTP: which reference a request carries, and how a replay answers.

The services do the real work (a reference is unique per wallet and type, the wallet is
locked before the lookup, a fingerprint tells a replay from a reuse). The API only picks
the reference — body `reference_id`, else the `Idempotency-Key` header — and answers a
replay with 200 and `Idempotent-Replayed: true` instead of 201.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from divine_whispers.errors import ValidationFailed
from divine_whispers.money import (
    IDEMPOTENCY_KEY_PATTERN,
    REFERENCE_MAX_LENGTH,
    is_valid_idempotency_key,
)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    type={
        "type": "string",
        "minLength": 1,
        "maxLength": REFERENCE_MAX_LENGTH,
        "pattern": IDEMPOTENCY_KEY_PATTERN,
    },
    description=(
        "1–255 printable ASCII characters, no comma (two `Idempotency-Key` headers arrive "
        "joined by a comma and are refused). Used as the reference when the body has no "
        "`reference_id`; a body `reference_id` that differs from it is refused (400). "
        "Repeating a request with the same key and body replays the original answer "
        "(200, `Idempotent-Replayed: true`); the same key with another body is 422."
    ),
)


def reference_for(request: Request, body_reference: str | None) -> str | None:
    """The request's reference: body `reference_id`, else a valid `Idempotency-Key`."""
    header = request.headers.get(HEADER)
    if header is not None and not is_valid_idempotency_key(header):
        raise ValidationFailed(
            f"{HEADER} must be 1–255 printable ASCII characters without a comma "
            "(send the header once).",
            field=HEADER,
        )
    if body_reference is not None and header is not None and header != body_reference:
        raise ValidationFailed(
            f"reference_id and {HEADER} differ; send one, or the same value in both.",
            field=HEADER,
        )
    return body_reference if body_reference is not None else header


def created_or_replayed(body: Any, *, replayed: bool) -> Response:
    """201 for a new effect; 200 + `Idempotent-Replayed: true` for a replay."""
    if replayed:
        return Response(body, status=status.HTTP_200_OK, headers={REPLAYED_HEADER: "true"})
    return Response(body, status=status.HTTP_201_CREATED)
