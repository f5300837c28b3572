"""Issuing and revoking API keys (one function each; commands and the admin call these).

Part of the wallet.services package (see its __init__); the key's row is
wallet.models.ApiToken.

A key is returned once, to the caller that issued it, and only its digest is stored
(knox). Each issue and revocation is an audit event on the system chain, so who gave
whom access, and when it was withdrawn, is part of the tamper-evident history.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from knox.models import get_digest_token
from knox.settings import CONSTANTS as KNOX

from audit.services import record_system_event
from divine_whispers.errors import PermissionRefused
from wallet.models import ApiToken


def may_issue_for(issuer: AbstractBaseUser | None, user: AbstractBaseUser) -> bool:
    """Whether `issuer` may hand out a key acting as `user`: never a way to gain rights.

    Only for an active account. Anyone for themselves (the same rights, by definition);
    for someone else only a superuser, and never for an account holding a right the
    issuer lacks. `None` is the operator at the server's shell (`manage.py issue_token`),
    who can reach the database anyway: allowed, and audited as the system.
    """
    return issue_refusal(issuer, user) is None


def issue_refusal(issuer: AbstractBaseUser | None, user: AbstractBaseUser) -> str | None:
    """Why `issuer` may not issue a key for `user` (a message for the page), or None."""
    if not user.is_active:
        return "No key is issued for an inactive account."
    if issuer is None or issuer.pk == user.pk:
        return None
    if not issuer.is_superuser:
        return "Only a superuser may issue an API key for another account."
    if not user.get_all_permissions() <= issuer.get_all_permissions():
        return "No key is issued for an account holding rights beyond your own."
    return None


def refuse_issue(issuer: AbstractBaseUser | None, user: AbstractBaseUser) -> str | None:
    """`issue_refusal`, and when it refuses an audit event on the system chain
    (`auth.token_issue_refused`, committed on its own: nothing else happens)."""
    refusal = issue_refusal(issuer, user)
    if refusal is not None:
        record_system_event(
            action="auth.token_issue_refused",
            actor=issuer,
            metadata={"user_id": user.pk, "reason": refusal},
        )
    return refusal


def save_new_token(
    token: ApiToken, *, expires_in: timedelta | None = None, actor: AbstractBaseUser | None = None
) -> str:
    """Give the unsaved `token` (user and name set) a fresh key, save it, return the key.

    `actor` None: the operator's command, audited as the system. Anyone else must pass
    `may_issue_for` (refused with `PermissionRefused`, audited)."""
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError("expires_in must be positive")
    refusal = refuse_issue(actor, token.user)
    if refusal is not None:
        raise PermissionRefused(refusal, user_id=token.user_id)
    digest, key = get_digest_token()
    token.digest = digest
    token.token_key = key[: KNOX.TOKEN_KEY_LENGTH]
    token.expiry = timezone.now() + (expires_in or settings.API_TOKEN_TTL)
    with transaction.atomic():
        token.save(force_insert=True)
        record_system_event(
            action="auth.token_issued",
            actor=actor,
            metadata={
                "token_id": token.pk,
                "user_id": token.user_id,
                "name": token.name,
                "expiry": token.expiry.isoformat(),
            },
        )
    return key


def issue_token(
    user: AbstractBaseUser,
    *,
    expires_in: timedelta | None = None,
    name: str = "",
    actor: AbstractBaseUser | None = None,
) -> tuple[ApiToken, str]:
    """A new key for `user`, valid for `expires_in` (default API_TOKEN_TTL)."""
    token = ApiToken(user=user, name=name)
    return token, save_new_token(token, expires_in=expires_in, actor=actor)


def revoke_tokens(
    user: AbstractBaseUser,
    *,
    actor: AbstractBaseUser | None = None,
    token_ids: list[int] | None = None,
) -> int:
    """Delete `user`'s keys (all, or those of `token_ids`); returns how many were revoked."""
    with transaction.atomic():
        rows = ApiToken.objects.filter(user=user)
        if token_ids is not None:
            rows = rows.filter(pk__in=token_ids)
        ids = sorted(rows.values_list("pk", flat=True))
        if not ids:
            return 0
        ApiToken.objects.filter(pk__in=ids).delete()
        record_system_event(
            action="auth.token_revoked",
            actor=actor,
            metadata={"user_id": user.pk, "token_ids": ids},
        )
    return len(ids)
