"""Back-office presentation shared by the wallet, audit and jobs admins (issue 13):

* points written one way everywhere (wallet/formatting.py) and right-aligned (admin.css);
* an "Audit trail" button instead of Django's History, which only lists edits made
  through admin forms — ledger rows are never edited, so it stayed empty; the audit
  trail is where a record's story is;
* transfer rows show the other party (one query per page, not per row);
* the site itself: a real name, no "View site" (there is no public site to view), and
  no navigation sidebar, which took 280 px from every table.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from wallet.formatting import points, signed_points
from wallet.models import Transaction

ADMIN_CSS = "wallet/admin.css"

admin.site.site_header = "Divine Whispers back-office"
admin.site.site_title = "Divine Whispers back-office"
admin.site.index_title = "Wallets, ledger and audit"
admin.site.site_url = None
admin.site.enable_nav_sidebar = False


class BackOfficeMedia:
    css = {"all": [ADMIN_CSS]}


def points_column(field: str, description: str, *, signed: bool = False) -> Callable:
    """A list/detail column showing `field` as points (`12,000`, or `+1,250` when signed)."""
    write = signed_points if signed else points

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> str:
        return write(getattr(obj, field))

    return column


class AuditTrailButtonMixin:
    """Replaces the History button with "Audit trail" (templates read `audit_trail_url`).

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


def attach_counterparties(rows: list[Transaction]) -> None:
    """Set `row.counterparty` (the other leg of a transfer) for a page of rows, one query."""
    transfer_ids = {row.transfer_id for row in rows if row.transfer_id is not None}
    legs: dict[tuple[Any, str], Transaction] = {}
    if transfer_ids:
        for leg in Transaction.objects.filter(transfer_id__in=transfer_ids).select_related("user"):
            legs[(leg.transfer_id, leg.type)] = leg
    for row in rows:
        other_type = {"transfer_out": "transfer_in", "transfer_in": "transfer_out"}.get(row.type)
        row.counterparty = legs.get((row.transfer_id, other_type)) if other_type else None


class TransactionChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        attach_counterparties(list(self.result_list))


def search_transfer_id(queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool] | None:
    """A search term that is a UUID finds both legs of that transfer (else None)."""
    try:
        transfer_id = uuid.UUID(search_term.strip())
    except ValueError:
        return None
    return queryset.filter(transfer_id=transfer_id), False
