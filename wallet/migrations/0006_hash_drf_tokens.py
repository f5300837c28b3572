"""Move DRF's plaintext API keys (rest_framework.authtoken) to hashed storage, then drop them.

Users must not lose access on upgrade: each existing key becomes an ApiToken row holding
only its digest (the same SHA-512 knox computes for a presented key) and knox's 15-character
lookup prefix, valid for API_TOKEN_TTL from the upgrade (the old keys had no expiry). Then
the plaintext table is dropped, with its migration records, so no copy of a usable key
remains in the database (backups taken from now on hold none either).

A database that never had DRF's table (a fresh install) has nothing to move.
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

PLAINTEXT_TABLE = "authtoken_token"


def hash_plaintext_keys(apps, schema_editor) -> None:
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    connection = schema_editor.connection
    if PLAINTEXT_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("wallet", "ApiToken")
    expiry = timezone.now() + settings.API_TOKEN_TTL
    quoted = schema_editor.quote_name(PLAINTEXT_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {quoted}")
        rows = cursor.fetchall()
    tokens = [
        ApiToken(
            digest=hash_token(key),
            token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
            user_id=user_id,
            name="migrated DRF token",
            expiry=expiry,
        )
        for key, user_id, _created in rows
    ]
    ApiToken.objects.bulk_create(tokens, batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {quoted}")
        cursor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])


class Migration(migrations.Migration):
    dependencies = [("wallet", "0005_api_tokens")]

    operations = [migrations.RunPython(hash_plaintext_keys, migrations.RunPython.noop)]
