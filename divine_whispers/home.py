"""`GET /`: where a person (or a script) who opens the server's address should go next.

Without it the root was Django's 404 page. A browser gets a small HTML page of links;
anything that does not ask for HTML (curl, scripts) gets the same links as JSON.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_safe

LINKS = (
    (
        "api_docs",
        "/api/docs/",
        "API reference (Swagger UI) of the REST API under /api/v1/ "
        "(JSON; header Authorization: Token <key>)",
    ),
    ("api_schema", "/api/schema/", "OpenAPI 3 schema of the API"),
    ("admin", "/admin/", "back office for support and finance staff"),
    ("health", "/healthz", "health check (database and cache)"),
)


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """Links to the API docs and the admin; HTML for browsers, JSON otherwise."""
    if "text/html" not in request.headers.get("Accept", ""):
        return JsonResponse(
            {
                "service": "Divine Whispers points wallet",
                "links": {name: url for name, url, _ in LINKS},
            }
        )
    items = format_html_join(
        "\n", '<li><a href="{}">{}</a> — {}</li>', ((url, url, text) for _, url, text in LINKS)
    )
    page = format_html(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Divine Whispers wallet</title></head><body>"
        "<h1>Divine Whispers points wallet</h1>"
        "<p>This server has no home page of its own. Start here:</p><ul>{}</ul>"
        "<p>The full documentation is the docs site built from the repository "
        "(<code>make docs</code>).</p></body></html>",
        items,
    )
    return HttpResponse(page)
