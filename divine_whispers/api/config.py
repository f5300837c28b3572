"""The Django REST Framework and drf-spectacular settings (settings.py reads them).

Kept beside the API toolkit they name: the apps appear only as dotted strings, so the
foundation still imports no app. Functions, so each settings load gets its own dicts
(settings.py adjusts REST_FRAMEWORK further).
"""

from __future__ import annotations

from typing import Any


def rest_framework_settings() -> dict[str, Any]:
    return {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "wallet.api.authentication.ExpiringTokenAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        # Rates are read from API_THROTTLE_RATE / API_ANON_THROTTLE_RATE at request time.
        "DEFAULT_THROTTLE_CLASSES": [
            "divine_whispers.api.throttling.UserThrottle",
            "divine_whispers.api.throttling.AnonThrottle",
        ],
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
        "DEFAULT_RENDERER_CLASSES": [
            "rest_framework.renderers.JSONRenderer",
            "rest_framework.renderers.BrowsableAPIRenderer",
        ],
        "DEFAULT_PARSER_CLASSES": ["divine_whispers.api.parsers.StrictJSONParser"],
        "EXCEPTION_HANDLER": "divine_whispers.api.exceptions.exception_handler",
        "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    }


def spectacular_settings() -> dict[str, Any]:
    return {
        "TITLE": "Divine Whispers wallet API",
        "DESCRIPTION": "Points wallet, paid reading jobs and their audit trail.",
        "VERSION": "1.0.0",
        "SERVE_INCLUDE_SCHEMA": False,
        # Swagger UI assets come from the drf-spectacular-sidecar package (static files),
        # so /api/docs/ works without reaching a CDN.
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        "COMPONENT_SPLIT_REQUEST": True,
        # Framework-level answers (406, and 400/403/413/415 for bodies) on every operation.
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "divine_whispers.api.schema.document_transport_errors",
            "divine_whispers.api.schema.refuse_undeclared_body_fields",
        ],
        # Several components share the `status` field name (transfer credit leg: hardening).
        "ENUM_NAME_OVERRIDES": {
            "TransactionStatusEnum": "wallet.models.TransactionStatus",
            "JobStatusEnum": "jobs.models.JobStatus",
        },
    }
