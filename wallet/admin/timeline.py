"""The customer timeline: one admin page per wallet answering "why is this balance X?".

One row per ledger movement, newest first, with the job it bought and the audit events
that recorded it folded inside (so a movement is counted once, and an amount appears
only on a booked row); audit events that name no ledger row (requests, refusals,
denials) are rows of their own, without an amount. Filters: money only, staff actions,
one day. Above it a summary — deposited, spent, refunded, transferred in and out,
adjusted — that adds up to the balance, with the sum shown and checked on the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlencode

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from audit.backoffice.links import admin_url, object_view_paths
from audit.labels import action_label
from audit.models import AuditEvent
from divine_whispers.points_format import refund_state, signed_points
from jobs.models import Job
from wallet import permissions, selectors
from wallet.admin.transactions import attach_counterparties
from wallet.models import Transaction, TransactionStatus, TransactionType, Wallet

TIMELINE_PAGE_SIZE = 50
# What each kind of entry needs, beyond the wallet itself.
KIND_PERMISSIONS = {
    "transaction": permissions.VIEW_TRANSACTION,
    "job": permissions.VIEW_JOB,
    "audit": permissions.VIEW_AUDIT_EVENT,
}
SUMMARY_TITLES = {
    "deposited": "Deposited",
    "purchased": "Purchased",
    "granted": "Granted",
    "spent": "Spent",
    "refunded": "Refunded",
    "transferred_in": "Transferred in",
    "transferred_out": "Transferred out",
    "adjusted_up": "Adjusted up",
    "adjusted_down": "Adjusted down",
    "clawed_back": "Clawed back",
    "clawback_reversed": "Clawback reversed",
    "expired": "Expired",
}


@dataclass
class TimelineRow:
    """One row of the page: a ledger movement (with what is folded inside it) or an
    audit event naming no movement. `amount` is set only on a booked movement."""

    at: Any
    kind: str
    title: str
    url: str
    link_text: str
    details: list[str] = field(default_factory=list)
    amount: int | None = None
    balance_after: int | None = None
    folded: list[dict[str, str]] = field(default_factory=list)


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
        only, day_error = timeline_filter(request)
        merged = selectors.customer_timeline(
            user_id=wallet.user_id, wallet_id=wallet.pk, kinds=kinds, only=only
        )
        page = Paginator(merged, TIMELINE_PAGE_SIZE).get_page(request.GET.get("p"))
        request.current_app = self.admin_site.name
        kept = {key: request.GET[key] for key in ("money", "staff", "day") if request.GET.get(key)}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": wallet,
            "title": f"Timeline of {wallet.user}",
            "wallet": wallet,
            "summary": summary_lines(wallet),
            "page": page,
            "rows": timeline_rows(list(page.object_list), kinds),
            "only": only,
            "day_value": request.GET.get("day", ""),
            "day_error": day_error,
            "filtered": bool(kept),
            "page_query": urlencode(kept) + "&" if kept else "",
        }
        return TemplateResponse(request, self.timeline_template, context)


def timeline_filter(request: HttpRequest) -> tuple[selectors.TimelineFilter, str]:
    """The filters from the query string (`money=1`, `staff=1`, `day=YYYY-MM-DD`), and why
    the day was ignored when it is not a date."""
    day, error = None, ""
    raw = request.GET.get("day", "").strip()
    if raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            error = f"“{raw}” is not a date (YYYY-MM-DD): showing every day."
    only = selectors.TimelineFilter(
        money_only=request.GET.get("money") == "1",
        staff_only=request.GET.get("staff") == "1",
        day=day,
        tz=timezone.get_current_timezone(),
    )
    return only, error


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


def timeline_rows(rows: list[tuple], kinds: set[str]) -> list[TimelineRow]:
    """The page's (at, rank, kind, id) rows as TimelineRows: the movements with their
    counterparty, refund state, job and audit events; a fixed number of queries."""
    ids: dict[str, list[int]] = {"transaction": [], "audit": []}
    for _, _, kind, pk in rows:
        ids[kind].append(pk)
    movements = Transaction.objects.select_related("actor").in_bulk(ids["transaction"])
    attach_counterparties(list(movements.values()))
    jobs, events = selectors.timeline_folded(
        ids["transaction"], with_jobs="job" in kinds, with_audit="audit" in kinds
    )
    spends = [pk for pk, row in movements.items() if row.type == TransactionType.SPEND]
    refunded = selectors.refunded_totals(spends)
    loose = AuditEvent.objects.select_related("actor").in_bulk(ids["audit"])
    shown = []
    for at, _, kind, pk in rows:
        if kind == "transaction":
            txn = movements[pk]
            shown.append(movement_row(at, txn, jobs.get(pk), events.get(pk, []), refunded))
        else:
            shown.append(event_row(at, loose[pk]))
    return shown


def movement_row(
    at: Any, txn: Transaction, job: Job | None, events: list[AuditEvent], refunded: dict
) -> TimelineRow:
    booked = txn.status == TransactionStatus.SUCCESS
    title = txn.get_type_display()
    if not booked:
        title += f" ({txn.get_status_display().lower()}: not booked)"
    details = [txn.description] if txn.description else []
    other = getattr(txn, "counterparty", None)
    if other is not None:
        direction = "to" if txn.type == TransactionType.TRANSFER_OUT else "from"
        details.append(f"{direction} {other.user.get_username()} (user #{other.user_id})")
    if txn.related_transaction_id:
        details.append(f"refund of spend #{txn.related_transaction_id}")
    if txn.type == TransactionType.SPEND and refunded.get(txn.pk):
        details.append(refund_state(refunded[txn.pk], -txn.amount))
    if not booked:
        details.append(f"{signed_points(txn.amount)} points asked, nothing moved")
    if txn.actor_id and txn.actor_id != txn.user_id:
        details.append(f"by {txn.actor.get_username()}")
    folded = [job_line(job, refunded)] if job is not None else []
    folded += [event_line(event) for event in events]
    return TimelineRow(
        at=at,
        kind="transaction",
        title=title,
        url=admin_url(txn),
        link_text=f"Ledger #{txn.pk}",
        details=details,
        amount=txn.amount if booked else None,
        balance_after=txn.balance_after if booked else None,
        folded=folded,
    )


def job_line(job: Job, refunded: dict) -> dict[str, str]:
    status = job.get_status_display()
    if refunded.get(job.transaction_id):
        status = refund_state(refunded[job.transaction_id], job.points_used)
    return {
        "url": admin_url(job),
        "text": f"Job #{job.pk}",
        "detail": f"{job.job_type.name} · {status}",
    }


def event_line(event: AuditEvent) -> dict[str, str]:
    return {
        "url": admin_url(event),
        "text": f"Audit #{event.pk}",
        "detail": " · ".join([action_label(event.action), *event_facts(event)]),
    }


def event_facts(event: AuditEvent) -> list[str]:
    """Who acted and why, as short phrases (no amount: nothing moves on an event row)."""
    facts = [f"by {event.actor.get_username()}" if event.actor_id else "by the system"]
    metadata = event.metadata or {}
    typed = metadata.get("adjustment_reason") or metadata.get("reason")
    if typed and typed != metadata.get("code"):
        facts.append(f"reason: “{typed}”")
    if metadata.get("decision_reason"):
        facts.append(f"decision: “{metadata['decision_reason']}”")
    if metadata.get("code"):
        facts.append(f"code {metadata['code']}")
    if metadata.get("path"):
        facts.append(str(metadata["path"]))
    return facts


def event_row(at: Any, event: AuditEvent) -> TimelineRow:
    details = event_facts(event)
    if event.amount is not None:
        details.insert(0, f"{signed_points(event.amount)} points asked, nothing moved")
    return TimelineRow(
        at=at,
        kind="audit",
        title=action_label(event.action),
        url=admin_url(event),
        link_text=f"Audit #{event.pk}",
        details=details,
    )
