"""`POST /webhooks/stripe`: the payment provider's signed events, outside the API.

No API authentication and no CSRF (the provider signs each event instead; the service
verifies the `Stripe-Signature` header). The answer is `200` for every event that was
stored, new, duplicate or of a type we ignore; `400 invalid_signature` for a missing,
wrong or stale signature (recorded, nothing else done); `5xx` only when the event could
not be stored, so the provider delivers it again. It is not an API operation (the
provider, not a client, calls it), so the OpenAPI schema leaves it out.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from divine_whispers.api.exceptions import classify
from wallet import services


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        event = services.receive_event(request.body, request.headers.get("Stripe-Signature"))
    except Exception as exc:  # every answer is the JSON envelope; 5xx only if not stored
        status, body, headers = classify(exc)
        return JsonResponse(body, status=status, headers=headers)
    return JsonResponse({"received": True, "event_id": event.event_id, "status": event.status})


urlpatterns = [path("stripe", stripe_webhook, name="stripe-webhook")]
