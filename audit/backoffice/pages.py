"""How every back-office page of the project looks and behaves where they agree:

* ledger, job and audit rows are append-only, so their admins are read-only
  (`ReadOnlyAdminMixin`);
* an "Audit trail" button instead of Django's History, which only lists edits made
  through admin forms — these records are never edited, so it stayed empty; the audit
  trail is where a record's story is (`AuditTrailButtonMixin`);
* points written one way everywhere (divine_whispers/points_format.py) and right-aligned
  (the stylesheet of `BackOfficeMedia`);
* the site itself: a real name, no "View site" (there is no public site to view), and
  no navigation sidebar, which took 280 px from every table (`brand_site`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from divine_whispers.points_format import points, signed_points

# The stylesheet lives in the wallet app's static folder (its URL is part of the pages).
ADMIN_CSS = "wallet/admin.css"
COPY_JS = "wallet/copy.js"
SHORT_REFERENCE_KEEP = 10
SITE_NAME = "Divine Whispers back-office"


def brand_site(site: admin.AdminSite) -> None:
    """Name the admin site and drop what has no use here ("View site", the sidebar)."""
    site.site_header = SITE_NAME
    site.site_title = SITE_NAME
    site.index_title = "Wallets, ledger and audit"
    site.site_url = None
    site.enable_nav_sidebar = False
    # One empty marker everywhere: Django's default "-" would sit next to our "—".
    site.empty_value_display = "—"


class BackOfficeMedia:
    css = {"all": [ADMIN_CSS]}
    js = [COPY_JS]


def pretty_json(value: Any) -> SafeString:
    """A JSON field as indented text (sorted keys), not one long line."""
    if value in (None, "", {}, []):
        return format_html("{}", "—")
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return format_html('<pre class="json">{}</pre>', text)


def short_reference(value: str | None, keep: int = SHORT_REFERENCE_KEEP) -> SafeString | str:
    """A long reference (`admin-<uuid>`, `order-…`) cut to its start and end, the whole
    of it in the tooltip and behind a copy button (wallet/static/wallet/copy.js): rows
    stay one line high. Short ones are shown whole."""
    if not value:
        return "—"
    if len(value) <= 2 * keep + 1:
        return value
    return format_html(
        '<span class="short-ref" title="{}">{}…{}</span>'
        '<button type="button" class="copy-ref" data-copy="{}" title="Copy {}" '
        'aria-label="Copy the reference">⧉</button>',
        value,
        value[:keep],
        value[-4:],
        value,
        value,
    )


def points_column(field: str, description: str, *, signed: bool = False) -> Callable:
    """A list/detail column showing `field` as points (`12,000`, or `+1,250` when signed)."""
    write = signed_points if signed else points

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> str:
        return write(getattr(obj, field))

    return column


class ReadOnlyAdminMixin:
    """View-only: ledger and audit rows are append-only, corrections are new rows.

    Every model field is read-only, plus the admin's own `readonly_fields` (computed
    links and labels).
    """

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> tuple:
        return (*(field.name for field in self.opts.fields), *self.readonly_fields)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class AuditTrailButtonMixin:
    """Replaces the History button with "Audit trail" (templates include
    admin/backoffice/audit_trail_tool.html, which reads `audit_trail_url`).

    Subclasses say which audit events tell the object's story, and may add to the
    change page's context (`extra_change_context`).
    """

    def audit_trail_url(self, obj: Any) -> str | None:
        return None

    def extra_change_context(self, request: HttpRequest, obj: Any) -> dict[str, Any]:
        return {}

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        if obj is not None:
            context["audit_trail_url"] = self.audit_trail_url(obj)
            context.update(self.extra_change_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)
