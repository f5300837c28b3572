"""OpenAPI helpers: every endpoint documents its error answers with the shared envelope."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

from divine_whispers.api.serializers import ErrorEnvelopeSerializer

# Answers any authenticated endpoint can give.
COMMON_ERRORS: dict[int, list[str]] = {
    401: ["not_authenticated"],
    429: ["throttled"],
    503: ["service_unavailable"],
}


def error_responses(extra: dict[int, list[str]] | None = None) -> dict[int, OpenApiResponse]:
    """`{status: OpenApiResponse}` for the common errors plus the endpoint's own codes."""
    merged: dict[int, list[str]] = {status: list(codes) for status, codes in COMMON_ERRORS.items()}
    for status, codes in (extra or {}).items():
        merged.setdefault(status, [])
        merged[status] = [*codes, *(c for c in merged[status] if c not in codes)]
    return {
        status: OpenApiResponse(
            response=ErrorEnvelopeSerializer,
            description="Error codes: " + ", ".join(f"`{code}`" for code in merged[status]),
        )
        for status, codes in sorted(merged.items())
    }
