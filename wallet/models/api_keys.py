"""API keys: the table of hashed keys the API authenticates with.

Issuing and revoking them is a service (wallet/services/api_keys.py); this is the row.
"""

from __future__ import annotations

from django.db import models
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS as KNOX


class ApiToken(AbstractAuthToken):
    """An API key, stored only as its SHA-512 digest (django-rest-knox's model).

    Whoever reads the database or a backup learns the digest and the key's first 15
    characters (knox's lookup prefix), never a usable key. The key itself is shown once,
    when it is issued (`manage.py issue_token`, or the admin). Every key expires; revoking
    deletes the row. The digest is unique but not the primary key, so admin URLs never
    carry it.
    """

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=KNOX.DIGEST_LENGTH, unique=True)
    name = models.CharField(max_length=100, blank=True, help_text="A label, e.g. 'mobile app'.")
    expiry = models.DateTimeField(help_text="The key is refused from this moment on.")

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        label = f" ({self.name})" if self.name else ""
        return f"API key #{self.pk} of {self.user}{label}"
