"""Writes audit events. The caller's DB transaction is the event's transaction.

Wallet-chain events are *built* here and advance the in-memory wallet's chain head;
the wallet service persists that head in the same UPDATE that writes the balance,
so an audited operation costs no extra lock and no extra round trip.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.hashing import compute_event_hash
from audit.models import SYSTEM_CHAIN, AuditChainHead, AuditEvent, wallet_chain
from divine_whispers.db.transactions import run_atomically
from divine_whispers.request_context import current_request_context


def _actor_id(actor: AbstractBaseUser | None) -> int | None:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return actor.pk


def _stored_ip(ip: str | None) -> str | None:
    """The client IP exactly as the database will give it back, or None if it is no IP.

    The hash must be computed over the value verify_ledger will read: PostgreSQL's
    `inet` stores IPv6 in canonical form (`2001:DB8::0001` comes back as `2001:db8::1`),
    so hashing the raw REMOTE_ADDR would make an honest event look tampered. A value
    that is not an IP at all would make the INSERT fail; it is dropped instead.
    """
    if not ip:
        return None
    try:
        ipaddress.ip_address(ip.strip())
        return AuditEvent._meta.get_field("ip").to_python(ip.strip())
    except (ValueError, ValidationError):
        return None


def _chained_event(*, chain: str, prev_hash: str, **fields: Any) -> AuditEvent:
    context = current_request_context()
    event = AuditEvent(
        chain=chain,
        request_id=context.request_id,
        ip=_stored_ip(context.ip),
        created_at=timezone.now(),
        key_id=settings.AUDIT_HMAC_KEY_ID,
        prev_hash=prev_hash,
        **fields,
    )
    event.metadata = event.metadata or {}
    event.hash = compute_event_hash(event)
    return event


def build_wallet_event(
    *,
    wallet: Any,
    action: str,
    actor: AbstractBaseUser | None = None,
    transaction_id: int | None = None,
    amount: int | None = None,
    balance_before: int | None = None,
    balance_after: int | None = None,
    metadata: dict | None = None,
) -> AuditEvent:
    """An unsaved event appended to the (locked) wallet's chain; moves wallet.audit_head."""
    event = _chained_event(
        chain=wallet_chain(wallet.pk),
        prev_hash=wallet.audit_head,
        action=action,
        actor_id=_actor_id(actor),
        wallet_id=wallet.pk,
        transaction_id=transaction_id,
        amount=amount,
        balance_before=balance_before,
        balance_after=balance_after,
        metadata=metadata or {},
    )
    wallet.audit_head = event.hash
    return event


def save_events(events: list[AuditEvent]) -> None:
    AuditEvent.objects.bulk_create(events)


def record_system_event(
    *,
    action: str,
    actor: AbstractBaseUser | None = None,
    amount: int | None = None,
    metadata: dict | None = None,
) -> AuditEvent:
    """Append to the system chain (events that belong to no wallet).

    Through the same retry wrapper as the money services: standalone it is its own
    transaction (retried on 40001/40P01); inside a caller's atomic block it joins it.
    """

    def operation() -> AuditEvent:
        head = AuditChainHead.objects.lock(SYSTEM_CHAIN)
        event = _chained_event(
            chain=SYSTEM_CHAIN,
            prev_hash=head.head,
            action=action,
            actor_id=_actor_id(actor),
            amount=amount,
            metadata=metadata or {},
        )
        event.save(force_insert=True)
        AuditChainHead.objects.filter(name=SYSTEM_CHAIN).update(head=event.hash)
        return event

    return run_atomically(operation)
