"""gunicorn settings for production; every value can be overridden from the environment."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One process per core, four threads each (gthread worker): measured against 2 × cores
# sync workers in interleaved rounds (README "Performance", bench/results/
# http_worker_ab.json), it served more spends and balances in every round. Threads keep
# HTTP connections alive (a sync worker closes each one) and overlap the database and
# cache round trips of one request with another's Python; each thread keeps its own
# persistent database connection (CONN_MAX_AGE), so a server holds workers × threads.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
accesslog = "-"
wsgi_app = "divine_whispers.wsgi:application"


def on_starting(server) -> None:
    """Load the Django settings in the master, before any worker forks.

    An insecure production configuration (divine_whispers/production.py) then stops
    gunicorn at once with the variable's name, instead of a loop of workers failing to boot.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "divine_whispers.settings")
    from django.conf import settings

    settings.SECRET_KEY  # noqa: B018 - importing the settings is the check
