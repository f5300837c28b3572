"""What every write view of the wallet API shares: input validation and documented responses.

Each write view is the same three steps: an input serializer validates the body
(`validated`), one service call acts (`wallet.services`, the only code that writes
money), an output serializer renders. `write_responses` documents the outcomes every
idempotent write has (201 done, 200 replayed, 422 reference reused) beside its own errors.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework.request import Request

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
