"""The back-office's 403 page: it names the permission that is missing, and the refusal is
an audit event (`admin.permission_denied`, system chain) like a refused money endpoint.

Django calls `permission_denied` (settings' `handler403`, named in divine_whispers/urls.py)
for any PermissionDenied outside the API (the API answers its own JSON 403). The staff
flows raise `PermissionDenied("app.codename")`; for Django's own admin checks the
permission is worked out from the URL (the model's view/change permission).
"""

from __future__ import annotations

import re

from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import Resolver404, resolve

from audit.services import record_system_event

PERMISSION_RE = re.compile(r"[a-z_]+\.[a-z_]+")
# Admin URL name suffix → the permission it needs (reading; a POST needs "change").
ADMIN_VIEW_SUFFIXES = {
    "changelist": "view",
    "change": "view",
    "history": "view",
    "add": "add",
    "delete": "delete",
}


def missing_permission(request: HttpRequest, exception: Exception | None) -> str:
    """`app_label.codename` the request lacked, or "" when it cannot be told."""
    named = str(exception.args[0]) if exception is not None and exception.args else ""
    if PERMISSION_RE.fullmatch(named):
        return named
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return ""
    for model in admin.site._registry:
        opts = model._meta
        prefix = f"{opts.app_label}_{opts.model_name}_"
        name = match.url_name or ""
        suffix = name[len(prefix) :] if name.startswith(prefix) else ""
        if suffix in ADMIN_VIEW_SUFFIXES:
            verb = ADMIN_VIEW_SUFFIXES[suffix]
            if verb == "view" and request.method == "POST":
                verb = "change"
            return f"{opts.app_label}.{verb}_{opts.model_name}"
    return ""


def permission_label(permission: str) -> str:
    if not permission:
        return ""
    app_label, codename = permission.split(".", 1)
    found = Permission.objects.filter(
        content_type__app_label=app_label, codename=codename
    ).values_list("name", flat=True)
    return found[0] if found else ""


def groups_granting(permission: str) -> list[str]:
    """The staff groups that hold `permission` (none: only a superuser may do it)."""
    if not permission:
        return []
    app_label, codename = permission.split(".", 1)
    return sorted(
        Group.objects.filter(
            permissions__content_type__app_label=app_label, permissions__codename=codename
        ).values_list("name", flat=True)
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: an admin-styled page naming the missing permission, audited."""
    permission = missing_permission(request, exception)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        record_system_event(
            action="admin.permission_denied",
            actor=user,
            metadata={"path": request.path, "method": request.method, "permission": permission},
        )
    context = {
        "title": "You do not have permission to do this",
        "permission": permission,
        "permission_label": permission_label(permission),
        "groups": groups_granting(permission),
        "path": request.path,
    }
    if user is not None and user.is_authenticated and user.is_staff:
        context.update(admin.site.each_context(request))
    response = TemplateResponse(
        request, "admin/backoffice/permission_denied.html", context, status=403
    )
    return response.render()
