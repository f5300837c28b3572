"""Keyed hash of an audit event: HMAC-SHA256 over a canonical serialization.

The serialization is a sorted-key JSON document of the event's own fields plus its
predecessor's hash, so changing any field, or removing/inserting an event, breaks
every hash after it; without the key nobody can recompute a consistent chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from django.conf import settings


class UnknownAuditKey(KeyError):
    pass


def key_for(key_id: str) -> bytes:
    if key_id == settings.AUDIT_HMAC_KEY_ID:
        return settings.AUDIT_HMAC_KEY.encode()
    try:
        return settings.AUDIT_HMAC_OLD_KEYS[key_id].encode()
    except KeyError as exc:
        raise UnknownAuditKey(key_id) from exc


def _canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_payload(fields: dict[str, Any]) -> bytes:
    document = dict(fields)
    document["created_at"] = _canonical_time(document["created_at"])
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def hmac_of(fields: dict[str, Any], key: bytes) -> str:
    """The one definition of an event's hash, shared by the writer and the verifier."""
    return hmac.new(key, canonical_payload(fields), hashlib.sha256).hexdigest()


def hash_fields(fields: dict[str, Any], key_id: str) -> str:
    return hmac_of(fields, key_for(key_id))


HASHED_FIELDS = (
    "chain",
    "action",
    "actor_id",
    "wallet_id",
    "transaction_id",
    "amount",
    "balance_before",
    "balance_after",
    "request_id",
    "ip",
    "metadata",
    "created_at",
    "key_id",
    "prev_hash",
)


def fields_of(event: Any) -> dict[str, Any]:
    """The hashed fields of a saved or unsaved event, as the hash sees them."""
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def compute_event_hash(event: Any) -> str:
    return hash_fields(fields_of(event), event.key_id)
