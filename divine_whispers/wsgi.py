"""The WSGI callable, `application`, that gunicorn serves (gunicorn.conf.py).

Loading it also loads the URLconf (every view, serializer and model: a broken import fails
the start, not the first request) and then takes everything loaded out of the garbage
collector's generations (`gc.freeze`). Those ~120,000 objects live as long as the
process; left in, every full collection walks them all — 30–56 ms with the GIL held,
every thread of the worker stalled, every ~1,500 requests: a latency tail of its own
(docs/performance.md). Frozen, a full collection walks only what requests made since.
"""

import gc
import logging
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "divine_whispers.settings")

application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 (imports every view now)
gc.freeze()

# A server (gunicorn, runserver) taking payments with a Stripe test-mode key says so once at
# start-up; /healthz says "payments": "test_mode" (commands stay quiet: their output is read).
from django.conf import settings  # noqa: E402

if settings.PAYMENTS_ENABLED and settings.STRIPE_SECRET_KEY.startswith("sk_test_"):
    logging.getLogger("divine_whispers.payments").warning(
        "Payments use a Stripe test-mode key (sk_test_...): no real money is taken."
    )
