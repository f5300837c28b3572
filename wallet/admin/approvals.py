"""Four-eyes approvals in the back-office: the queue, the request page, approve / reject.

Read-only like every ledger admin: a request changes only through the services
(`approve_adjustment`, `reject_adjustment`), called by two dedicated views with
`actor=request.user`. Requesters (`wallet.adjust_points`) see their requests and their
state; approvers (`wallet.approve_adjustment`) work the queue of pending ones, and never
see decision buttons on a request of their own.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit.backoffice.filter_chips import FilterChipsMixin
from audit.backoffice.links import (
    admin_link,
    admin_url,
    changelist_url,
    object_view_paths,
    user_label,
)
from audit.backoffice.pages import AuditTrailButtonMixin, ReadOnlyAdminMixin
from audit.models import AuditEvent
from divine_whispers.errors import DomainError
from divine_whispers.points_format import points, signed_points
from wallet import permissions, services
from wallet.admin.forms import RejectApprovalForm, domain_error_message, with_code
from wallet.admin.staff_flow import CONFIRM_TEMPLATE, ConfirmedFlowMixin, StaffOperationMixin
from wallet.models import ApprovalRequest, ApprovalStatus, Wallet


def _when(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"


def can_read_approvals(user: Any) -> bool:
    return user.has_perm(permissions.APPROVE) or user.has_perm(permissions.ADJUST)


class ApprovalStatusFilter(admin.SimpleListFilter):
    """By what a request reads now: a pending request past its expiry is `expired`."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ApprovalStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ApprovalStatus.values:
            return queryset.with_status(self.value(), timezone.now())
        return queryset


class MineFilter(admin.SimpleListFilter):
    """The two views staff need: what waits for me to decide (an approver's default, see
    `changelist_view`), and what I asked for; "All requests" is a choice of its own, so
    that choosing it does not lead back to the default."""

    title = "whose"
    parameter_name = "whose"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = [("mine", "Requested by me"), ("all", "All requests")]
        if request.user.has_perm(permissions.APPROVE):
            choices.insert(0, ("to_decide", "Waiting for my decision"))
        return choices

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            if choice["display"] != "All":  # Django's own "All" (no parameter)
                yield choice

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "mine":
            return queryset.filter(requested_by=request.user)
        if self.value() == "to_decide":
            return queryset.with_status(ApprovalStatus.PENDING, timezone.now()).exclude(
                requested_by=request.user
            )
        return queryset


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(
    AuditTrailButtonMixin,
    FilterChipsMixin,
    ConfirmedFlowMixin,
    StaffOperationMixin,
    ReadOnlyAdminMixin,
    admin.ModelAdmin,
):
    change_form_template = "admin/wallet/approvalrequest/change_form.html"
    reject_template = "admin/wallet/approvalrequest/reject.html"
    list_display = (
        "id",
        "created_at",
        "status_label",
        "customer",
        "signed_amount",
        "reason_short",
        "requested_by",
        "state_detail",
    )
    list_display_links = ("id", "created_at")
    list_select_related = ("user", "requested_by", "decided_by", "transaction")
    list_filter = (ApprovalStatusFilter, MineFilter)
    search_fields = ("user__username", "user__email", "reference_id", "reason", "id__exact")
    search_help_text = "Search by customer, reference, reason or request id."
    list_per_page = 50
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "status_label",
                    "customer",
                    "wallet_link",
                    "signed_amount",
                    "reason",
                    "reference_id",
                )
            },
        ),
        (
            "Request and decision",
            {
                "fields": (
                    "requester_label",
                    "created_at",
                    "expires_at",
                    "decider_label",
                    "decided_at",
                    "decision_reason",
                    "transaction_link",
                )
            },
        ),
    )
    readonly_fields = (
        "requester_label",
        "decider_label",
        "status_label",
        "customer",
        "wallet_link",
        "signed_amount",
        "reason_short",
        "transaction_link",
        "state_detail",
    )

    # --- who sees it ---

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """An approver opening the bare list lands on "Waiting for my decision"."""
        if not request.GET and request.user.has_perm(permissions.APPROVE):
            return HttpResponseRedirect(f"{request.path}?whose=to_decide")
        return super().changelist_view(request, extra_context)

    def get_fieldsets(self, request: HttpRequest, obj: ApprovalRequest | None = None) -> Any:
        """A decided request shows its decision, not when it would have expired."""
        if obj is None or obj.effective_status == ApprovalStatus.PENDING:
            return self.fieldsets
        (main, decision) = self.fieldsets
        fields = tuple(name for name in decision[1]["fields"] if name != "expires_at")
        if obj.effective_status == ApprovalStatus.EXPIRED:
            fields = ("expires_at", *fields)
        return (main, (decision[0], {"fields": fields}))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_read_approvals(request.user) or super().has_view_permission(request, obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_read_approvals(request.user) or super().has_module_permission(request)

    # --- columns ---

    @admin.display(description="status", ordering="status")
    def status_label(self, approval: ApprovalRequest) -> SafeString:
        status = approval.effective_status
        return format_html(
            '<span class="approval-status approval-{}">{}</span>',
            status,
            ApprovalStatus(status).label,
        )

    @admin.display(description="customer", ordering="user__username")
    def customer(self, approval: ApprovalRequest) -> str:
        return f"{approval.user.get_username()} (user #{approval.user_id})"

    @admin.display(description="requested by")
    def requester_label(self, approval: ApprovalRequest) -> str:
        return user_label(approval.requested_by)

    @admin.display(description="decided by")
    def decider_label(self, approval: ApprovalRequest) -> str:
        return user_label(approval.decided_by) if approval.decided_by_id else "—"

    @admin.display(description="wallet")
    def wallet_link(self, approval: ApprovalRequest) -> SafeString | str:
        wallet = Wallet.objects.get(pk=approval.wallet_id)
        return admin_link(wallet, f"Wallet #{wallet.pk}: balance {points(wallet.balance)} points")

    @admin.display(description="amount", ordering="amount")
    def signed_amount(self, approval: ApprovalRequest) -> str:
        return signed_points(approval.amount)

    @admin.display(description="reason")
    def reason_short(self, approval: ApprovalRequest) -> str:
        return approval.reason if len(approval.reason) <= 60 else approval.reason[:59] + "…"

    @admin.display(description="booked as")
    def transaction_link(self, approval: ApprovalRequest) -> SafeString | str:
        return admin_link(approval.transaction)

    @admin.display(description="decision")
    def state_detail(self, approval: ApprovalRequest) -> SafeString | str:
        """One column for where it stands: when a pending request expires, or who decided
        (and what was booked); a decided request has no expiry to show."""
        status = approval.effective_status
        if status == ApprovalStatus.PENDING:
            return f"expires {_when(approval.expires_at)}"
        if status == ApprovalStatus.EXPIRED:
            return f"expired {_when(approval.expires_at)}"
        decided = f"{approval.decided_by.get_username()}, {_when(approval.decided_at)}"
        if approval.transaction_id:
            return format_html("{} · {}", decided, admin_link(approval.transaction))
        return decided

    # --- the request page ---

    def audit_trail_url(self, approval: ApprovalRequest) -> str:
        return changelist_url(AuditEvent, wallet__id__exact=approval.wallet_id)

    def extra_change_context(self, request: HttpRequest, approval: ApprovalRequest) -> dict:
        return self._decision_context(request, approval)

    def _decision_context(self, request: HttpRequest, approval: ApprovalRequest) -> dict:
        balance = Wallet.objects.filter(pk=approval.wallet_id).values_list("balance", flat=True)[0]
        is_requester = approval.requested_by_id == request.user.pk
        # Their own wallet, or a staff member's without being a superuser (the service
        # refuses both; the page says so instead of offering the button).
        self_dealing = services.self_dealing_message(approval.user, request.user)
        return {
            "approval": approval,
            "is_requester": is_requester,
            "self_dealing": self_dealing,
            "can_decide": approval.is_pending
            and not is_requester
            and self_dealing is None
            and request.user.has_perm(permissions.APPROVE),
            "current_balance": balance,
            "balance_after": balance + approval.amount,
            "hours_left": max(
                0, int((approval.expires_at - timezone.now()).total_seconds() // 3600)
            ),
        }

    def get_urls(self) -> list:
        return [
            *object_view_paths(
                self,
                ("approve/", "approve", self.approve_view),
                ("reject/", "reject", self.reject_view),
            ),
            *super().get_urls(),
        ]

    # --- decisions ---

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then book the adjustment through `services.approve_adjustment`."""
        approval = self._operation_object(request, object_id, permissions.APPROVE)
        page = self._confirm_page(
            approval, f"Approve approval request #{approval.pk}", "Approve", admin_url(approval)
        )
        if approval.effective_status != ApprovalStatus.PENDING:
            return self._render_page(
                request,
                CONFIRM_TEMPLATE,
                booked=decided_text(approval),
                booked_url=admin_url(approval.transaction or approval),
                start_over_url=changelist_url(ApprovalRequest, whose="to_decide"),
                start_over_label="Requests waiting for my decision",
                **{key: value for key, value in page.items() if key != "start_over_url"},
            )
        error = ""
        if request.method == "POST":
            try:
                decision = services.approve_adjustment(approval=approval.pk, actor=request.user)
            except DomainError as refusal:
                error = domain_error_message(refusal)
                approval.refresh_from_db()
            else:
                row = decision.transaction
                return self._decided(
                    request,
                    approval,
                    f"Approved request #{approval.pk}: booked adjustment #{row.pk} of "
                    f"{signed_points(row.amount)} points for {approval.user}. New balance: "
                    f"{points(row.balance_after)} points.",
                )
        context = self._decision_context(request, approval)
        if not context["can_decide"] and not error:
            error = self._why_not(approval, context)
        return self._render_page(
            request,
            CONFIRM_TEMPLATE,
            error=error,
            summary=[
                ("Customer", f"{approval.user} ({approval.user.email or 'no email'})", ""),
                ("Adjustment", f"{signed_points(approval.amount)} points", "confirm-amount"),
                (
                    "Wallet balance",
                    f"{points(context['current_balance'])} → "
                    f"{points(context['balance_after'])} points",
                    "confirm-balance",
                ),
                ("Reason", approval.reason, "confirm-reason"),
                (
                    "Requested by",
                    f"{approval.requested_by} at {_when(approval.created_at)}",
                    "",
                ),
            ],
            warnings=[],
            confirm_label=f"Approve and book {signed_points(approval.amount)} points",
            hide_confirm=not context["can_decide"],
            **page,
        )

    def reject_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Reject with a written reason, through `services.reject_adjustment`."""
        approval = self._operation_object(request, object_id, permissions.APPROVE)
        form = RejectApprovalForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                services.reject_adjustment(
                    approval=approval.pk, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except DomainError as refusal:
                form.add_domain_error(refusal)
                approval.refresh_from_db()
            else:
                return self._decided(
                    request,
                    approval,
                    f"Rejected request #{approval.pk} ({signed_points(approval.amount)} points "
                    f"for {approval.user}): nothing was booked.",
                )
        context = self._decision_context(request, approval)
        return self._render_form(
            request,
            self.reject_template,
            form,
            title=f"Reject approval request #{approval.pk}",
            original=approval,
            why_not="" if context["can_decide"] else self._why_not(approval, context),
            **context,
        )

    def _decided(self, request: HttpRequest, approval: ApprovalRequest, text: str) -> HttpResponse:
        self._log_action(request, approval, text)
        messages.success(request, text)
        return HttpResponseRedirect(admin_url(approval))

    @staticmethod
    def _why_not(approval: ApprovalRequest, context: dict) -> SafeString:
        if context["is_requester"]:
            return with_code(
                "You requested this adjustment: another staff member must decide it.",
                "self_approval_forbidden",
            )
        if context["self_dealing"] is not None:
            return context["self_dealing"]
        return with_code(
            f"This request is {approval.effective_status}; only a pending request can be decided.",
            "approval_not_pending",
        )


def decided_text(approval: ApprovalRequest) -> str:
    """What a decided request's approve page says instead of offering a booking: the
    result, with the balance the booking left (not a "before → after" still to come)."""
    status = approval.effective_status
    if status == ApprovalStatus.APPROVED:
        row = approval.transaction
        return (
            f"This request was already approved by {approval.decided_by.get_username()} at "
            f"{_when(approval.decided_at)}: {row.get_type_display().lower()} #{row.pk} of "
            f"{signed_points(row.amount)} points was booked, leaving a balance of "
            f"{points(row.balance_after)} points. Nothing more will happen."
        )
    if status == ApprovalStatus.REJECTED:
        return (
            f"This request was rejected by {approval.decided_by.get_username()} at "
            f"{_when(approval.decided_at)}. Nothing was booked, nothing more will happen."
        )
    return (
        f"This request expired at {_when(approval.expires_at)} without a decision. "
        "Nothing was booked; ask again if it is still needed."
    )
