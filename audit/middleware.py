"""Gives every request an id, returned as X-Request-ID and stored on audit events."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit.context import RequestContext, reset_request_context, set_request_context
from divine_whispers.client_ip import client_ip

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
        try:
            response = self.get_response(request)
        finally:
            reset_request_context(token)
        response["X-Request-ID"] = request_id
        return response
