"""The customer timeline: one admin page per wallet answering "why is this balance X?".

Ledger rows, jobs and audit events of the user merged in time order by the database
(`selectors.customer_timeline`, paginated), under a summary — deposited, spent,
refunded, transferred in and out, adjusted — that adds up to the balance, with the sum
shown and checked on the page.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from audit.backoffice.links import object_view_paths
from audit.models import AuditEvent
from jobs.models import Job
from wallet import permissions, selectors
from wallet.models import Transaction, Wallet

TIMELINE_PAGE_SIZE = 50
# What each kind of entry needs, beyond the wallet itself.
KIND_PERMISSIONS = {
    "transaction": permissions.VIEW_TRANSACTION,
    "job": permissions.VIEW_JOB,
    "audit": permissions.VIEW_AUDIT_EVENT,
}
SUMMARY_TITLES = {
    "deposited": "Deposited",
    "granted": "Granted",
    "spent": "Spent",
    "refunded": "Refunded",
    "transferred_in": "Transferred in",
    "transferred_out": "Transferred out",
    "adjusted_up": "Adjusted up",
    "adjusted_down": "Adjusted down",
    "expired": "Expired",
}


class TimelineMixin:
    """For WalletAdmin: the view at `<wallet id>/timeline/`."""

    timeline_template = "admin/wallet/wallet/timeline.html"

    def get_urls(self) -> list:
        return [
            *object_view_paths(self, ("timeline/", "timeline", self.timeline_view)),
            *super().get_urls(),
        ]

    def timeline_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # Checked before the wallet is looked up: a refusal reveals nothing about it.
        if not (
            self.has_view_permission(request)
            and request.user.has_perm(KIND_PERMISSIONS["transaction"])
        ):
            raise PermissionDenied
        wallet = self.get_object(request, unquote(object_id))
        if wallet is None:
            raise Http404(f"Wallet {object_id!r} does not exist.")
        kinds = {kind for kind, perm in KIND_PERMISSIONS.items() if request.user.has_perm(perm)}
        merged = selectors.customer_timeline(
            user_id=wallet.user_id, wallet_id=wallet.pk, kinds=kinds
        )
        page = Paginator(merged, TIMELINE_PAGE_SIZE).get_page(request.GET.get("p"))
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": wallet,
            "title": f"Timeline of {wallet.user}",
            "wallet": wallet,
            "summary": summary_lines(wallet),
            "page": page,
            "entries": timeline_entries(list(page.object_list)),
            "shown_kinds": sorted(kinds),
        }
        return TemplateResponse(request, self.timeline_template, context)


def summary_lines(wallet: Wallet) -> dict[str, Any]:
    """The summary as the page shows it: signed lines, their sum, the balance, and
    whether they agree (they always should: a mismatch is a finding for verify_ledger)."""
    totals = selectors.customer_summary(wallet_id=wallet.pk)
    lines = [
        {"title": SUMMARY_TITLES[name], "name": name, "signed": sign * totals[name]}
        for sign, name in selectors.SUMMARY_LINES
    ]
    added = sum(line["signed"] for line in lines)
    return {
        "lines": lines,
        "sum": added,
        "balance": wallet.balance,
        "agrees": added == totals["ledger_total"] == wallet.balance,
    }


def timeline_entries(rows: list[tuple]) -> list[dict[str, Any]]:
    """The page's (at, rank, kind, id) rows as objects, fetched in one query per kind."""
    ids: dict[str, list[int]] = {"transaction": [], "job": [], "audit": []}
    for _, _, kind, pk in rows:
        ids[kind].append(pk)
    objects = {
        "transaction": Transaction.objects.select_related("related_transaction").in_bulk(
            ids["transaction"]
        ),
        "job": Job.objects.select_related("job_type", "transaction").in_bulk(ids["job"]),
        "audit": AuditEvent.objects.select_related("actor").in_bulk(ids["audit"]),
    }
    return [{"at": at, "kind": kind, "obj": objects[kind][pk]} for at, _, kind, pk in rows]
