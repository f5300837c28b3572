"""Session login/logout for the browsable API, at /api/auth/ (DRF's template).

The login page itself is HTML (it is a form for people), but a refused login is an error
under /api/ and so answers the JSON error body (400 `validation_error`); a locked-out
login is turned into 429 by django-axes' middleware (divine_whispers/lockout.py).
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import path

from divine_whispers.api.exceptions import error_body


class ApiLoginView(auth_views.LoginView):
    template_name = "rest_framework/login.html"
    # Without `?next=`, land on a page of the browsable API rather than Django's default
    # /accounts/profile/ (which does not exist here).
    next_page = "/api/v1/wallet/balance"
    http_method_names = ["get", "post", "head", "options"]  # FormView treats PUT as POST

    def form_invalid(self, form) -> JsonResponse:
        fields = {
            name: [str(message) for message in errors] for name, errors in form.errors.items()
        }
        return JsonResponse(
            error_body("validation_error", "Invalid username or password.", {"fields": fields}),
            status=400,
        )


urlpatterns = [
    path("login/", ApiLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
