"""The request context (request id, client address) and the middleware that sets it.

The middleware also starts the request's database time budget (divine_whispers/db/bounds.py).

Audit events, log lines and error bodies all quote the same request id, so it is set once,
as the request arrives, and read from here. A context variable rather than a global: each
thread and each async task sees its own request, so nothing here assumes a single process
or a single thread.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

from divine_whispers.client_ip import client_ip
from divine_whispers.db.bounds import end_request_budget, start_request_budget


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None


_NO_REQUEST = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "audit_request_context", default=None
)


def current_request_context() -> RequestContext:
    """The running request's context; an empty one outside HTTP (commands, workers)."""
    return _current.get() or _NO_REQUEST


def set_request_context(context: RequestContext) -> contextvars.Token:
    return _current.set(context)


def reset_request_context(token: contextvars.Token) -> None:
    _current.reset(token)


# Contract (Input rules): a client's id is kept only when it is 1–64 of these characters;
# anything else (spaces, quotes, newlines, very long) gets a fresh id, so logs stay clean.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _request_id_for(request: HttpRequest) -> str:
    """Honour a well-formed incoming id (from a proxy) so logs line up end to end."""
    incoming = request.headers.get("X-Request-ID", "")
    if _SAFE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id_for(request)
        request.request_id = request_id
        token = set_request_context(RequestContext(request_id=request_id, ip=client_ip(request)))
        # From here the request's database work is on the clock (DATABASE_REQUEST_TIMEOUT_SECONDS).
        budget = start_request_budget()
        try:
            response = self.get_response(request)
        finally:
            end_request_budget(budget)
            reset_request_context(token)
        response["X-Request-ID"] = request_id
        return response
