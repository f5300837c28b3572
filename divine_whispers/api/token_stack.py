"""A shorter middleware stack for API-key requests: what a token request never needs is
skipped, while the admin, the browsable API and session logins keep every middleware.

A request is a *token request* when its path is under `/api/v1/` and its Authorization
header's scheme is `Token` (knox's prefix, any case). For such a request DRF's token
authentication decides alone — a good key authenticates, anything else (unknown, expired,
revoked, malformed) is a 401 — and the session is never consulted. So for it the
middlewares below pass the request straight on: messages, `request.user` from the
session, and the Content-Security-Policy of non-HTML answers (an HTML page, e.g. the
browsable API, still gets its policy). They are subclasses of Django's and django-csp's
own classes (settings.MIDDLEWARE names them), so the admin's checks still find them.
Django's session middleware stays as it is: `check --deploy` looks for it by name, and
it loads a session only when something reads it — nothing does for a token request, so
no session is read, written or sent.

CSRF is left as it is: DRF's views are CSRF-exempt at the middleware and DRF enforces CSRF
itself on session-authenticated unsafe requests, which are never token requests.

Safe by construction: nothing on the short path can authenticate a session, so a token
request that somehow reached DRF's session authentication would be anonymous (401/403),
never a session user without a CSRF check. Every other middleware (request id, JSON
errors, the log line and metrics, read routing, security headers and the TLS redirect,
no-store, CSRF, the lockout) runs for every request.
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.http import HttpRequest, HttpResponse

TOKEN_PATH_PREFIX = "/api/v1/"
_WHITESPACE = " \t\n\r\x0b\x0c"  # what bytes.split() splits on, as DRF reads the header


def is_token_request(request: HttpRequest) -> bool:
    """Under /api/v1/ with an `Authorization: Token …` header (scheme in any case).

    Memoized on the request: several middlewares ask."""
    known = request.__dict__.get("_dw_token_request")
    if known is None:
        header = request.META.get("HTTP_AUTHORIZATION", "").lstrip(_WHITESPACE)
        known = request.path_info.startswith(TOKEN_PATH_PREFIX) and (
            header[:5].lower() == "token" and (len(header) == 5 or header[5] in _WHITESPACE)
        )
        request._dw_token_request = known
    return known


class _SkippedForTokenRequests:
    """Mixin: the middleware runs for every request but token requests."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_token_request(request):
            return self.get_response(request)
        return super().__call__(request)


class AuthenticationMiddleware(_SkippedForTokenRequests, _AuthenticationMiddleware):
    """`request.user` from the session; for a token request DRF sets it from the key."""


class MessageMiddleware(_SkippedForTokenRequests, _MessageMiddleware):
    """Django's messages (admin notices); a token request shows none."""


class CSPMiddleware(_CSPMiddleware):
    """django-csp's policy on every response except a token request's non-HTML answer
    (JSON: no document a browser would run a script in)."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if is_token_request(request) and not response.get("Content-Type", "").startswith(
            "text/html"
        ):
            return response
        return super().process_response(request, response)
