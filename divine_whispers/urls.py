"""Top-level routes: admin, the versioned REST API, its schema, and a health check.

The apps' routes are included by name (strings), so the foundation imports no app."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from divine_whispers.api.exceptions import api_not_found
from divine_whispers.health import healthz
from divine_whispers.home import home
from divine_whispers.observability.metrics import metrics_view

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # Browsers ask every page's /favicon.ico: the back-office's icon, not a 404 each time.
    path(
        "favicon.ico",
        RedirectView.as_view(url=static("wallet/favicon.svg"), permanent=True),
        name="favicon",
    ),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", include("wallet.api.urls")),
    path("api/v1/", include("jobs.api.urls")),
    # The payment provider's signed events: outside the API's authentication and schema.
    path("webhooks/", include("wallet.api.webhooks")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    # Session login/logout for the browsable API.
    path("api/auth/", include(("divine_whispers.api.auth_views", "rest_framework"))),
    # Anything else under /api/ is a JSON 404, not Django's HTML page. `[\s\S]`, not `.`:
    # a path with an encoded newline (`/api/v1/jobs/%0A`) fell through to the HTML 404.
    re_path(r"^api(?:/[\s\S]*)?$", api_not_found),
]

handler500 = "divine_whispers.api.exceptions.server_error"
# The back-office's 403 page names the missing permission and is audited.
handler403 = "audit.backoffice.forbidden.permission_denied"
