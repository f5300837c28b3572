"""Model-permission checks for staff endpoints (a permission class per permission name)."""

from __future__ import annotations

from functools import cache

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


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
