"""Links between back-office pages, and how a user is named on them.

Every admin (wallet, jobs, audit) links to the others' records; one way to build those
URLs and labels keeps them alike and keeps each admin free of the others' modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Model
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


def admin_url(obj: Model, view: str = "change") -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


def object_view_paths(model_admin: Any, *views: tuple[str, str, Callable]) -> list[URLPattern]:
    """URL patterns for a ModelAdmin's own views on one object: each (suffix, name, view)
    answers at `<object id>/<suffix>` behind `admin_view` (staff login, no-store), named
    `<app>_<model>_<name>` like Django's own admin URLs."""
    opts = model_admin.opts
    return [
        path(
            f"<path:object_id>/{suffix}",
            model_admin.admin_site.admin_view(view),
            name=f"{opts.app_label}_{opts.model_name}_{name}",
        )
        for suffix, name, view in views
    ]


def changelist_url(model: type[Model], **filters: Any) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    if filters:
        url += "?" + "&".join(f"{key}={value}" for key, value in filters.items())
    return url


def admin_link(obj: Model | None, label: Any = None) -> SafeString | str:
    """A link to the object's admin page, or a dash when there is none."""
    if obj is None:
        return "—"
    return format_html('<a href="{}">{}</a>', admin_url(obj), label if label else str(obj))


def admin_links(objects: Any, empty: str = "none") -> SafeString | str:
    """Links to each object's admin page, comma-separated (`empty` when there is none)."""
    if not objects:
        return empty
    return format_html_join(
        ", ", '<a href="{}">{}</a>', ((admin_url(obj), str(obj)) for obj in objects)
    )


def user_label(user: Any) -> str:
    """Users as text: support staff may not open the user admin, so no link."""
    return f"{user.get_username()} ({user.email or 'no email'}, user #{user.pk})"
