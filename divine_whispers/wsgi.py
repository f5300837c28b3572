"""
WSGI config for divine_whispers project.

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import logging
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "divine_whispers.settings")

application = get_wsgi_application()

# A server (gunicorn, runserver) taking payments with a Stripe test-mode key says so once at
# start-up; /healthz says "payments": "test_mode" (commands stay quiet: their output is read).
from django.conf import settings  # noqa: E402

if settings.PAYMENTS_ENABLED and settings.STRIPE_SECRET_KEY.startswith("sk_test_"):
    logging.getLogger("divine_whispers.payments").warning(
        "Payments use a Stripe test-mode key (sk_test_...): no real money is taken."
    )
