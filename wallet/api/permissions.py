"""Refusals on the wallet's money endpoints are audited (the contract's "rejected attempt
that matters"); the permission check itself is the foundation's `has_perm`."""

from __future__ import annotations

from rest_framework.request import Request

from audit.services import record_system_event


class AuditPermissionDeniedMixin:
    """Writes an `api.permission_denied` audit event when an authenticated user is
    refused a money endpoint (the contract's "rejected attempt that matters").

    The permission check runs before any object lookup, so a refusal says nothing about
    whether the object in the URL exists.
    """

    audited_actions: frozenset[str] = frozenset()

    def permission_denied(self, request: Request, message=None, code=None):
        if request.user.is_authenticated and getattr(self, "action", None) in self.audited_actions:
            record_system_event(
                action="api.permission_denied",
                actor=request.user,
                metadata={"path": request.path, "method": request.method},
            )
        super().permission_denied(request, message=message, code=code)
