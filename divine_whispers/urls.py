"""Top-level routes: admin, the versioned REST API, its schema, and a health check."""

from django.contrib import admin
from django.urls import path

from divine_whispers.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
