"""`manage.py issue_token USERNAME [--expires-in 30d] [--name LABEL]`: a new API key.

The key is printed once, alone on stdout (so `KEY=$(manage.py issue_token alice)` works),
and never again: only its digest is stored. Its expiry goes to stderr.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from divine_whispers import durations
from wallet.services.api_keys import issue_token


class Command(BaseCommand):
    help = "Issue an API key for USERNAME and print it once (only its digest is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--expires-in",
            default=None,
            help=f"Lifetime of the key: {durations.HELP}. Default: API_TOKEN_TTL (90d).",
        )
        parser.add_argument("--name", default="", help="A label for the key (max 100).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(options["username"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"no user {options['username']!r}", returncode=2) from exc
        if not user.is_active:
            raise CommandError(f"user {user.get_username()!r} is inactive", returncode=2)
        expires_in = None
        if options["expires_in"] is not None:
            try:
                expires_in = durations.parse_duration(options["expires_in"])
            except ValueError as exc:
                raise CommandError(f"--expires-in {exc}", returncode=2) from exc
        name = options["name"]
        if len(name) > 100:
            raise CommandError("--name must be at most 100 characters", returncode=2)
        token, key = issue_token(user, expires_in=expires_in, name=name)
        self.stdout.write(key)
        self.stderr.write(
            f"API key #{token.pk} for {user.get_username()}, expires {token.expiry.isoformat()}."
            " It is shown only now; store it safely."
        )
