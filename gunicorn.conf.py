"""gunicorn settings for production; every value can be overridden from the environment."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
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
