"""Per-request context (request id, client IP) for audit events.

A context variable rather than a global: each thread and each async task sees its
own request, so nothing here assumes a single process or a single thread.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


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
