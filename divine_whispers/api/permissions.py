"""Model-permission checks for staff endpoints, with refusals on money endpoints audited."""

from __future__ import annotations

from functools import cache

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from audit.services import record_system_event


@cache
def has_perm(perm: str) -> type[BasePermission]:
    """A permission class requiring the Django model permission `perm` (e.g. wallet.x)."""

    class HasModelPermission(BasePermission):
        message = f"You need the {perm} permission."

        def has_permission(self, request: Request, view) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perm(perm))

    HasModelPermission.__name__ = f"Has_{perm.replace('.', '_')}"
    HasModelPermission.__qualname__ = HasModelPermission.__name__
    return HasModelPermission


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
