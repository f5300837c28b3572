"""`manage.py migrate` as the role that owns the tables, when MIGRATE_DATABASE_URL is set.

The service runs as a role that does not own the tables (DATABASE_URL), so that it can
neither disable the append-only triggers nor use the test suite's TRUNCATE escape hatch;
migrations must create and alter tables, so they run as the owner. With
MIGRATE_DATABASE_URL set (same database, the owner's credentials), this command swaps the
default connection's credentials before Django's own migrate runs; unset, it is exactly
Django's migrate. The roles and their grants: deploy/db_roles.sql.
"""

from __future__ import annotations

from typing import Any

import environ
from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import DEFAULT_DB_ALIAS, connections

from divine_whispers.db.config import use_owner_role


class Command(DjangoMigrate):
    help = DjangoMigrate.help + " Runs as MIGRATE_DATABASE_URL's role when that is set."

    def handle(self, *args: Any, **options: Any) -> None:
        url = settings.MIGRATE_DATABASE_URL
        if url and options["database"] == DEFAULT_DB_ALIAS:
            connection = connections[DEFAULT_DB_ALIAS]
            connection.close()
            try:
                use_owner_role(connection.settings_dict, environ.Env.db_url_config(url))
            except ValueError as exc:
                raise CommandError(str(exc), returncode=2) from exc
            if options["verbosity"] >= 1:
                self.stdout.write(
                    f"Migrating as {connection.settings_dict['USER']!r} (MIGRATE_DATABASE_URL)"
                )
        super().handle(*args, **options)
