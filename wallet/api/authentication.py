"""`Authorization: Token <key>` against hashed, expiring keys (django-rest-knox).

Knox's own lookup also loads and deletes the user's other expired keys on every
request (an extra query and writes on the hot path). This subclass keeps knox's header
parsing and user checks but finds the key with one indexed query on its digest, and
treats an expired key as unknown without writing anything. There is no per-process
cache: a revoked (deleted) or expired key is refused on the next request on every server.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from rest_framework.exceptions import AuthenticationFailed

from divine_whispers.db.compiled import CompiledQuery
from wallet.models import ApiToken

INVALID = "Invalid, expired or revoked API key."

# The lookup every API request makes, compiled to SQL once per process: compiling the
# queryset was most of authentication's CPU (README "Performance"). The sentinels only
# mark where each call's values go.
_ACTIVE_KEY = CompiledQuery(
    lambda digest, now: ApiToken.objects.select_related("user").filter(
        digest=digest, expiry__gt=now
    ),
    digest="\x00digest-placeholder",
    now=datetime(2, 1, 1, tzinfo=UTC),
)


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        try:
            key = token.decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed(INVALID) from exc
        row = _ACTIVE_KEY.first(digest=hash_token(key), now=timezone.now())
        if row is None:
            raise AuthenticationFailed(INVALID)
        return self.validate_user(row)


class ExpiringTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI: `Authorization: Token <key>` (an apiKey header, as DRF's token scheme)."""

    target_class = ExpiringTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`Token <key>`: a key from `manage.py issue_token` or the admin. Keys expire "
                "(API_TOKEN_TTL) and can be revoked; an expired, revoked or unknown key is 401."
            ),
        }
