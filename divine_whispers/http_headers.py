"""Response headers that no view should have to remember (no-store, Permissions-Policy)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


class ApiNoStoreMiddleware:
    """`Cache-Control: no-store` (and its companions) on every response under /api/.

    Balances, histories and errors are personal and change with every operation: no
    browser, proxy or CDN may keep a copy. Django's own helper sets the header, so
    it agrees with `never_cache`.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            add_never_cache_headers(response)
            _honest_allow(response)
        return response


def _honest_allow(response: HttpResponse) -> None:
    """DRF lists OPTIONS in `Allow` whenever a view has an `options` method, but with no
    metadata class (settings: DEFAULT_METADATA_CLASS = None) that method answers 405:
    the header then names only what is answered."""
    view = (getattr(response, "renderer_context", None) or {}).get("view")
    if view is None or getattr(view, "metadata_class", True) is not None:
        return
    if "Allow" in response:
        methods = [m.strip() for m in response["Allow"].split(",")]
        response["Allow"] = ", ".join(m for m in methods if m and m != "OPTIONS")


# No page of this service uses a camera, a microphone, the location, sensors, USB or the
# Payment Request API (purchases go to the provider's own page): deny them all, so an
# injected script or a framed page cannot ask the browser for them.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)


class PermissionsPolicyMiddleware:
    """`Permissions-Policy` on every response: API, admin, static files, errors.

    It is the outermost middleware: static files (WhiteNoise), JSON errors built by the
    middleware below it and every page leave through it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
