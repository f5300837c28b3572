"""The one place that turns every error into the contract's JSON error body and status.

Every error leaves the API as `{"error": {"code", "message", "details"}}`. Domain errors
(the catalogue, divine_whispers/errors.py) carry their code and HTTP status on the class,
so a status can never drift between endpoints. DRF and Django errors are mapped to the
same shape. Anything else is logged with the request id and answered with a JSON 500 —
which the test suite makes sure never happens.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, InternalError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import set_rollback

from divine_whispers import errors
from divine_whispers.db.transactions import commit_sent
from divine_whispers.request_context import current_request_context

logger = logging.getLogger("divine_whispers.api")

# Field-level error codes that are themselves contract codes: when every field error of a
# validation failure carries one of these, it becomes the response's code.
FIELD_CODES_PROMOTED = frozenset({errors.AmountTooLarge.code})

# DRF exceptions: (status, code). Looked up along the exception's MRO.
DRF_STATUS: dict[type[Exception], tuple[int, str]] = {
    drf.ParseError: (400, "validation_error"),
    drf.NotAuthenticated: (401, "not_authenticated"),
    drf.AuthenticationFailed: (401, "not_authenticated"),
    drf.PermissionDenied: (403, "permission_denied"),
    drf.NotFound: (404, "not_found"),
    drf.MethodNotAllowed: (405, "method_not_allowed"),
    drf.NotAcceptable: (406, "not_acceptable"),
    drf.UnsupportedMediaType: (415, "unsupported_media_type"),
    drf.Throttled: (429, "throttled"),
}


# Hints appended to an error's message where a client most often goes wrong (codes unchanged).
SEND_JSON_HINT = "Send the body as JSON, with the header Content-Type: application/json."
USE_TOKEN_HINT = "This API does not take Bearer tokens: send the header Authorization: Token <key>."


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _lookup(table: dict[type, Any], exc: BaseException) -> Any:
    for klass in type(exc).__mro__:
        if klass in table:
            return table[klass]
    return None


def _plain(detail: Any) -> Any:
    """ErrorDetail trees → plain JSON (lists of strings keyed by field)."""
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_plain(item) for item in detail]
    return str(detail)


def _flat_codes(codes: Any) -> list[str]:
    if isinstance(codes, dict):
        return [code for value in codes.values() for code in _flat_codes(value)]
    if isinstance(codes, list):
        return [code for value in codes for code in _flat_codes(value)]
    return [str(codes)]


def _first_message(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            label = "" if key == "non_field_errors" else f"{key}: "
            return _first_message(value, label)
    if isinstance(detail, list) and detail:
        return _first_message(detail[0], prefix)
    return f"{prefix}{detail}"


def _validation_response(exc: drf.ValidationError) -> tuple[int, dict, dict]:
    detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    codes = set(_flat_codes(exc.get_codes()))
    code = codes.pop() if len(codes) == 1 and codes <= FIELD_CODES_PROMOTED else "validation_error"
    return 400, error_body(code, _first_message(detail), {"fields": _plain(detail)}), {}


def _domain_response(exc: errors.DomainError) -> tuple[int, dict, dict]:
    status = exc.status
    if status is None:  # a DomainError class without a status: a bug, not a client error
        return _unexpected(exc)
    details = dict(exc.details)
    field = details.pop("field", None)
    if field is not None:
        details["fields"] = {field: [exc.message]}
    headers = {}
    if isinstance(exc, errors.VelocityLimitExceeded) and "window_seconds" in details:
        headers["Retry-After"] = str(details["window_seconds"])
    return status, error_body(exc.code, exc.message, details), headers


def _drf_response(exc: drf.APIException) -> tuple[int, dict, dict] | None:
    mapped = _lookup(DRF_STATUS, exc)
    if mapped is None:
        return None
    status, code = mapped
    headers: dict[str, str] = {}
    details: dict[str, Any] = {}
    message = _first_message(exc.detail)
    if isinstance(exc, drf.UnsupportedMediaType):
        message = f"{message} {SEND_JSON_HINT}"
    if isinstance(exc, drf.Throttled):
        wait = math.ceil(exc.wait) if exc.wait is not None else 1
        headers["Retry-After"] = str(max(wait, 1))
        details["retry_after_seconds"] = max(wait, 1)
        message = "Too many requests; retry later."
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        status = exc.status_code  # DRF turns 401 into 403 when no scheme can challenge
        code = "not_authenticated" if status == 401 else "permission_denied"
    return status, error_body(code, message, details), headers


# What a lost database connection means for the client (contract: Failures).
NOT_APPLIED, UNKNOWN = "not_applied", "unknown"
UNAVAILABLE_MESSAGES = {
    NOT_APPLIED: "The database connection failed or did not answer in time before the "
    "change was committed: nothing was changed. Retry later.",
    UNKNOWN: "The database connection failed while the change was being committed: it may "
    "or may not have been applied. Retry with the same reference (reference_id or "
    "Idempotency-Key): if it was applied, the retry answers 200 with "
    "Idempotent-Replayed: true; if not, it applies it now.",
}


def _database_unavailable(exc: BaseException) -> tuple[int, dict, dict]:
    """503: `outcome` is "unknown" once a COMMIT was sent in this request
    (divine_whispers/db/transactions.py), else "not_applied" — the transaction was still
    open, so the database rolled it back."""
    outcome = UNKNOWN if commit_sent() else NOT_APPLIED
    request_id = current_request_context().request_id
    logger.warning("database unavailable (request_id=%s, outcome=%s): %s", request_id, outcome, exc)
    body = error_body(
        "service_unavailable",
        UNAVAILABLE_MESSAGES[outcome],
        {"outcome": outcome, "request_id": request_id},
    )
    return 503, body, {"Retry-After": "1"}


INTERNAL_ERROR_MESSAGE = (
    "Internal error. The request may or may not have changed anything: quote the request "
    "id when reporting it, and retry a change only with the same reference."
)


def _unexpected(exc: BaseException) -> tuple[int, dict, dict]:
    request_id = current_request_context().request_id
    logger.error("unhandled API error (request_id=%s)", request_id, exc_info=exc)
    body = error_body("internal_error", INTERNAL_ERROR_MESSAGE, {"request_id": request_id})
    return 500, body, {}


# 25006 read_only_sql_transaction: the server the connection reached is no primary (any
# more, or not yet): a primary demoted or promoting during a failover.
NOT_A_PRIMARY_SQLSTATES = frozenset({"25006"})


def _connection_ended(exc: BaseException) -> bool:
    """A failover seen as an InternalError (docs/operations/cluster.md): psycopg raises one
    without a SQLSTATE ("received 2 results from command 'COMMIT'") when the server ends
    the connection in the middle of its answer — a primary shutting down — and the server
    refuses a write with 25006 when the connection reached a member that is not the
    primary. The database is unavailable, as with an OperationalError. Any other error
    the server sent (it has a SQLSTATE) stays a 500."""
    cause = exc.__cause__
    if not isinstance(exc, InternalError) or cause is None:
        return False
    return cause.sqlstate is None or cause.sqlstate in NOT_A_PRIMARY_SQLSTATES


def classify(exc: BaseException) -> tuple[int, dict, dict]:
    """(status, body, headers) for any exception raised while serving an API request."""
    if isinstance(exc, errors.DomainError):
        return _domain_response(exc)
    if isinstance(exc, drf.ValidationError):
        return _validation_response(exc)
    if isinstance(exc, DjangoValidationError):
        return _validation_response(drf.ValidationError(detail=exc.messages))
    if isinstance(exc, (Http404,)):
        return 404, error_body("not_found", "Not found."), {}
    if isinstance(exc, DjangoPermissionDenied):
        return 403, error_body("permission_denied", "Permission denied."), {}
    if isinstance(exc, RequestDataTooBig):
        return 413, error_body("request_too_large", "The request body is too large."), {}
    if isinstance(exc, SuspiciousOperation):
        return 400, error_body("validation_error", "Malformed request."), {}
    if isinstance(exc, (OperationalError, InterfaceError)) or _connection_ended(exc):
        return _database_unavailable(exc)
    if isinstance(exc, drf.APIException):
        mapped = _drf_response(exc)
        if mapped is not None:
            return mapped
    return _unexpected(exc)


def exception_handler(exc: Exception, context: dict) -> Response:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every exception gets a JSON answer."""
    status, body, headers = classify(exc)
    set_rollback()
    request = context.get("request")
    if status == 401 and request is not None and _sent_bearer(request):
        body["error"]["message"] = USE_TOKEN_HINT
    if request is not None:
        # Errors are always JSON, even from the YAML schema view or the browsable API.
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
    return Response(body, status=status, headers=headers)


def _sent_bearer(request: Any) -> bool:
    """A client that sent `Authorization: Bearer …` to the API (a common mix-up with OAuth).

    DRF reads it as no credentials at all; the message then says which scheme to use.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    return request.path.startswith("/api/") and header[:7].lower() == "bearer "


def _not_found_message(path: str) -> str:
    """The catch-all's message, with a hint when the path only differs by a trailing slash."""
    if path.endswith("/") and _routed(path.rstrip("/")):
        return f"No such API endpoint. API paths have no trailing slash: {path.rstrip('/')}"
    if not path.endswith("/") and _routed(path + "/"):
        return f"No such API endpoint. This path ends with a slash: {path}/"
    return "No such API endpoint."


def _routed(path: str) -> bool:
    """Whether `path` reaches a real view (not this catch-all)."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.func is not api_not_found


@csrf_exempt  # it changes nothing; without this a POST by a token client got CSRF's HTML 403
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Catch-all under /api/: an unknown URL is a JSON 404, never Django's HTML page."""
    return JsonResponse(error_body("not_found", _not_found_message(request.path)), status=404)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """handler500: an error outside DRF (middleware, plain views) still answers JSON; a
    database that is unreachable or too slow there is the 503 it is everywhere else."""
    exc = sys.exc_info()[1]  # handler500 runs inside Django's `except` for the error
    if isinstance(exc, (OperationalError, InterfaceError)):
        status, body, headers = _database_unavailable(exc)
        return JsonResponse(body, status=status, headers=headers)
    request_id = getattr(request, "request_id", "")
    return JsonResponse(
        error_body("internal_error", INTERNAL_ERROR_MESSAGE, {"request_id": request_id}),
        status=500,
    )


# Codes for errors that Django itself answers (no DRF view involved): CSRF, login views,
# routing. Anything not listed keeps its status with a generic code.
PLAIN_STATUS_CODES: dict[int, str] = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "internal_error",
    503: "service_unavailable",
}


def json_error_for_status(status: int, message: str = "") -> JsonResponse:
    code = PLAIN_STATUS_CODES.get(status, "validation_error" if status < 500 else "internal_error")
    return JsonResponse(
        error_body(code, message or code.replace("_", " ").capitalize() + "."), status=status
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> Any:
    """CSRF_FAILURE_VIEW: the JSON error body under /api/, Django's own page elsewhere."""
    if request.path.startswith("/api/"):
        return json_error_for_status(
            403, f"CSRF verification failed ({reason}). Token clients send no session cookie."
        )
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)
