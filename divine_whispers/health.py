"""Liveness that means something: 200 only when the database answers."""

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse(
            {
                "error": {
                    "code": "service_unavailable",
                    "message": "Database unreachable.",
                    "details": {},
                }
            },
            status=503,
        )
    return JsonResponse({"status": "ok"})
