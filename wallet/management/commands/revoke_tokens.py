"""`manage.py revoke_tokens USERNAME`: every API key of the user stops working at once.

Keys are deleted, so the next request with any of them is a 401 on every server.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from wallet.services.api_keys import revoke_tokens


class Command(BaseCommand):
    help = "Revoke (delete) every API key of USERNAME."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(options["username"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"no user {options['username']!r}", returncode=2) from exc
        revoked = revoke_tokens(user)
        self.stdout.write(f"Revoked {revoked} API key(s) of {user.get_username()}.")
