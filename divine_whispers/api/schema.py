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


# Answers that depend on how a request is sent rather than on the operation, added to
# every operation by `document_transport_errors` (a drf-spectacular postprocessing hook).
TRANSPORT_ERRORS_ALL: dict[str, list[str]] = {"406": ["not_acceptable"]}
# A session (browsable API) client's unsafe request without its CSRF token.
TRANSPORT_ERRORS_UNSAFE: dict[str, list[str]] = {"403": ["permission_denied"]}
TRANSPORT_ERRORS_WITH_BODY: dict[str, list[str]] = {
    "400": ["validation_error"],
    "413": ["request_too_large"],
    "415": ["unsupported_media_type"],
}
UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})
ERROR_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


def _add_error(responses: dict, status: str, codes: list[str]) -> None:
    listed = ", ".join(f"`{code}`" for code in codes)
    existing = responses.get(status)
    if existing is None:
        responses[status] = {
            "content": {"application/json": {"schema": ERROR_ENVELOPE_REF}},
            "description": f"Error codes: {listed}",
        }
        return
    description = existing.get("description", "")
    missing = [code for code in codes if f"`{code}`" not in description]
    if missing:
        extra = ", ".join(f"`{code}`" for code in missing)
        existing["description"] = f"{description}, {extra}" if description else extra


def refuse_undeclared_body_fields(result: dict, generator, request, public) -> dict:
    """Request bodies state `additionalProperties: false`: the server refuses unknown
    fields (StrictInputSerializer), so the schema must not allow them."""
    schemas = result.get("components", {}).get("schemas", {})
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                ref = media.get("schema", {}).get("$ref", "")
                component = schemas.get(ref.rsplit("/", 1)[-1]) if ref else None
                if component is not None and component.get("type") == "object":
                    component["additionalProperties"] = False
    return result


def document_transport_errors(result: dict, generator, request, public) -> dict:
    """Every operation states 406; unsafe ones 403; those with a body 400/413/415.

    These are answered by the framework before the view runs (content negotiation, CSRF
    for session clients, the JSON parser, Django's body size limit), so no view lists
    them itself; the schema must still say that they can happen.
    """
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            groups = [TRANSPORT_ERRORS_ALL]
            if method in UNSAFE_METHODS:
                groups.append(TRANSPORT_ERRORS_UNSAFE)
            if "requestBody" in operation:
                groups.append(TRANSPORT_ERRORS_WITH_BODY)
            for group in groups:
                for status, codes in group.items():
                    _add_error(operation["responses"], status, codes)
    return result
