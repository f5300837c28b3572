"""Wallets in the back-office: look up a customer's wallet, its recent ledger rows and
jobs, its timeline (timeline.py), and adjust its points (adjust_flow.py).

Read-only like every ledger admin: the balance changes only through the adjust flow,
which calls `services.adjust` with `actor=request.user`; large amounts become four-eyes
approval requests (approvals.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit.backoffice.links import changelist_url, user_label
from audit.backoffice.pages import AuditTrailButtonMixin, BackOfficeMedia, ReadOnlyAdminMixin
from audit.models import AuditEvent
from divine_whispers.points_format import points
from jobs.models import Job
from wallet import permissions, selectors
from wallet.admin.adjust_flow import AdjustFlowMixin
from wallet.admin.bulk_grants import BulkGrantMixin
from wallet.admin.grant_flow import GrantFlowMixin
from wallet.admin.staff_flow import StaffOperationMixin
from wallet.admin.timeline import TimelineMixin
from wallet.models import ApprovalRequest, ApprovalStatus, Lot, Transaction, Wallet

RECENT_TRANSACTIONS_SHOWN = 20
RECENT_JOBS_SHOWN = 10
LOTS_SHOWN = 20


@admin.register(Wallet)
class WalletAdmin(
    AuditTrailButtonMixin,
    TimelineMixin,
    AdjustFlowMixin,
    BulkGrantMixin,
    GrantFlowMixin,
    StaffOperationMixin,
    ReadOnlyAdminMixin,
    admin.ModelAdmin,
):
    change_form_template = "admin/wallet/wallet/change_form.html"
    Media = BackOfficeMedia
    list_display = ("id", "user", "user_email", "balance_points", "updated_at")
    list_display_links = ("id", "user")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "user__id__exact")
    search_help_text = "Search by username, email or user id."
    list_filter = (("updated_at", admin.DateFieldListFilter),)
    ordering = ("-updated_at", "-id")
    show_full_result_count = False
    fields = (
        "owner",
        "balance_points",
        "pending_approvals",
        "transactions_link",
        "jobs_link",
        "audit_link",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="email", ordering="user__email")
    def user_email(self, wallet: Wallet) -> str:
        return wallet.user.email

    @admin.display(description="owner")
    def owner(self, wallet: Wallet) -> str:
        return user_label(wallet.user)

    @admin.display(description="balance", ordering="balance")
    def balance_points(self, wallet: Wallet) -> SafeString:
        return format_html('<span class="points">{}</span> points', points(wallet.balance))

    @admin.display(description="approval requests")
    def pending_approvals(self, wallet: Wallet) -> SafeString:
        pending = ApprovalRequest.objects.filter(wallet=wallet).with_status(
            ApprovalStatus.PENDING, timezone.now()
        )
        url = changelist_url(ApprovalRequest, wallet__id__exact=wallet.pk)
        count = pending.count()
        label = f"{count} pending" if count else "none pending"
        return format_html('<a href="{}">{} (all requests of this wallet)</a>', url, label)

    def audit_trail_url(self, wallet: Wallet) -> str:
        return changelist_url(AuditEvent, wallet__id__exact=wallet.pk)

    @admin.display(description="ledger")
    def transactions_link(self, wallet: Wallet) -> SafeString:
        count = wallet.transactions.count()
        url = changelist_url(Transaction, wallet__id__exact=wallet.pk)
        return format_html('<a href="{}">All {} transactions</a>', url, count)

    @admin.display(description="jobs")
    def jobs_link(self, wallet: Wallet) -> SafeString:
        url = changelist_url(Job, user__id__exact=wallet.user_id)
        return format_html('<a href="{}">All jobs of {}</a>', url, wallet.user)

    @admin.display(description="audit trail")
    def audit_link(self, wallet: Wallet) -> SafeString:
        url = changelist_url(AuditEvent, wallet__id__exact=wallet.pk)
        return format_html('<a href="{}">Audit events of this wallet</a>', url)

    def extra_change_context(self, request: HttpRequest, wallet: Wallet) -> dict[str, Any]:
        return {
            **self._recent_activity(request, wallet),
            "can_adjust": request.user.has_perm(permissions.ADJUST),
            "can_grant": request.user.has_perm(permissions.GRANT),
            "lots": list(Lot.objects.filter(wallet=wallet).order_by("-id")[:LOTS_SHOWN]),
        }

    def _recent_activity(self, request: HttpRequest, wallet: Wallet) -> dict[str, Any]:
        """The newest ledger rows and jobs, read-only and bounded, for the wallet page."""
        activity: dict[str, Any] = {}
        if request.user.has_perm(permissions.VIEW_TRANSACTION):
            activity["recent_transactions"] = list(
                wallet.transactions.select_related("related_transaction")[
                    :RECENT_TRANSACTIONS_SHOWN
                ]
            )
            activity["all_transactions_url"] = changelist_url(
                Transaction, wallet__id__exact=wallet.pk
            )
        if request.user.has_perm(permissions.VIEW_JOB):
            activity["recent_jobs"] = list(
                Job.objects.filter(user_id=wallet.user_id)
                .select_related("job_type", "transaction")
                .annotate(refunded_points=selectors.refunded_subquery("transaction_id"))[
                    :RECENT_JOBS_SHOWN
                ]
            )
            activity["all_jobs_url"] = changelist_url(Job, user__id__exact=wallet.user_id)
        return activity

    def get_urls(self) -> list:
        return [
            *self.bulk_grant_urls(),
            *self.adjust_urls(),
            *self.grant_urls(),
            *super().get_urls(),
        ]
