"""Every error under /api/ leaves as the JSON error body, whoever produced it.

DRF views already answer through divine_whispers.api.exceptions; this catches the rest —
Django's login/logout views (405 for a GET logout), CSRF, a lockout, a plain view — so a
client never has to parse an HTML error page. A JSON error passes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from divine_whispers.api.exceptions import json_error_for_status

KEPT_HEADERS = ("Retry-After", "WWW-Authenticate", "Allow", "Vary")


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        replacement = json_error_for_status(response.status_code)
        for header in KEPT_HEADERS:
            if header in response:
                replacement[header] = response[header]
        return replacement
