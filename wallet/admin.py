"""Back-office for support and finance staff: look up wallets and their ledger, refund a
spend, adjust points.

Ledger rows are append-only, so these admins never edit or delete one: every page is
read-only and money moves only through the two staff flows below, which call the
services (`wallet.services.refund` / `adjust`) with `actor=request.user`. Each flow is a
dedicated view on the object page, in the style of Django's own password-change view.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs.models import Job
from wallet import services
from wallet.admin_exports import TRANSACTION_COLUMNS, CsvExportMixin
from wallet.admin_flows import AdjustFlowMixin, RefundFlowMixin, is_refundable_spend
from wallet.admin_polish import (
    AuditTrailButtonMixin,
    BackOfficeMedia,
    TransactionChangeList,
    points_column,
    search_transfer_id,
)
from wallet.admin_timeline import TimelineMixin
from wallet.formatting import points
from wallet.models import ApiToken, Transaction, TransactionStatus, TransactionType, Wallet
from wallet.services import api_keys as tokens

REFUND_PERMISSION = "wallet.refund_transaction"
ADJUST_PERMISSION = "wallet.adjust_points"
RECENT_TRANSACTIONS_SHOWN = 20
RECENT_JOBS_SHOWN = 10


# --- Shared helpers (also used by jobs.admin and audit.admin) ---------------------------


def admin_url(obj: Model, view: str = "change") -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


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


def user_label(user: Any) -> str:
    """Users as text: support staff may not open the user admin, so no link."""
    return f"{user.get_username()} ({user.email or 'no email'}, user #{user.pk})"


def job_label(job: Job) -> str:
    return f"Job #{job.pk} {job.job_type.name} ({job.get_status_display()})"


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


class StaffOperationMixin:
    """The shared mechanics of a staff flow view: permission, object, form, service call."""

    def _operation_object(self, request: HttpRequest, object_id: str, permission: str) -> Model:
        # The admin site already requires an active staff user; the flow needs its own
        # permission on top, checked before anything about the object is revealed.
        if not request.user.has_perm(permission):
            raise PermissionDenied(permission)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"{self.opts.verbose_name} {object_id!r} does not exist.")
        return obj


# --- Wallet -----------------------------------------------------------------------------


@admin.register(Wallet)
class WalletAdmin(
    AuditTrailButtonMixin,
    TimelineMixin,
    AdjustFlowMixin,
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
        from wallet.models import ApprovalRequest, ApprovalStatus

        pending = ApprovalRequest.objects.filter(wallet=wallet).with_status(
            ApprovalStatus.PENDING, timezone.now()
        )
        url = changelist_url(ApprovalRequest, wallet__id__exact=wallet.pk)
        count = pending.count()
        label = f"{count} pending" if count else "none pending"
        return format_html('<a href="{}">{} (all requests of this wallet)</a>', url, label)

    def audit_trail_url(self, wallet: Wallet) -> str:
        from audit.models import AuditEvent

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
        from audit.models import AuditEvent

        url = changelist_url(AuditEvent, wallet__id__exact=wallet.pk)
        return format_html('<a href="{}">Audit events of this wallet</a>', url)

    def extra_change_context(self, request: HttpRequest, wallet: Wallet) -> dict[str, Any]:
        return {
            **self._recent_activity(request, wallet),
            "can_adjust": request.user.has_perm(ADJUST_PERMISSION),
        }

    def _recent_activity(self, request: HttpRequest, wallet: Wallet) -> dict[str, Any]:
        """The newest ledger rows and jobs, read-only and bounded, for the wallet page."""
        activity: dict[str, Any] = {}
        if request.user.has_perm("wallet.view_transaction"):
            activity["recent_transactions"] = list(
                wallet.transactions.select_related("related_transaction")[
                    :RECENT_TRANSACTIONS_SHOWN
                ]
            )
            activity["all_transactions_url"] = changelist_url(
                Transaction, wallet__id__exact=wallet.pk
            )
        if request.user.has_perm("jobs.view_job"):
            activity["recent_jobs"] = list(
                Job.objects.filter(user_id=wallet.user_id).select_related(
                    "job_type", "transaction"
                )[:RECENT_JOBS_SHOWN]
            )
            activity["all_jobs_url"] = changelist_url(Job, user__id__exact=wallet.user_id)
        return activity

    def get_urls(self) -> list:
        return [*self.adjust_urls(), *super().get_urls()]


# --- Transaction ------------------------------------------------------------------------


@admin.register(Transaction)
class TransactionAdmin(
    AuditTrailButtonMixin,
    CsvExportMixin,
    RefundFlowMixin,
    StaffOperationMixin,
    ReadOnlyAdminMixin,
    admin.ModelAdmin,
):
    csv_columns = TRANSACTION_COLUMNS
    change_form_template = "admin/wallet/transaction/change_form.html"
    Media = BackOfficeMedia
    list_display = (
        "id",
        "created_at",
        "user",
        "type",
        "signed_amount",
        "status",
        "balance_after_points",
        "counterparty_label",
        "reference_id",
        "related_link",
    )
    list_display_links = ("id", "created_at")
    list_select_related = ("user", "related_transaction")
    list_filter = ("type", "status", ("created_at", admin.DateFieldListFilter))
    search_fields = (
        "user__username",
        "user__email",
        "reference_id",
        "description",
        "id__exact",
    )
    search_help_text = (
        "Search by username, email, reference, description, transaction id or transfer id."
    )
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50

    def get_fieldsets(self, request: HttpRequest, obj: Transaction | None = None) -> list:
        fieldsets: list = [
            (
                None,
                {
                    "fields": (
                        "id",
                        "wallet_link",
                        "user_label",
                        "type",
                        "signed_amount",
                        "status",
                        "balance_after_points",
                        "created_at",
                    )
                },
            ),
            ("Details", {"fields": ("reference_id", "description", "actor_label")}),
        ]
        if obj is not None:
            fieldsets.append(("Related records", {"fields": self._related_fields(obj)}))
        return fieldsets

    def _related_fields(self, txn: Transaction) -> tuple[str, ...]:
        fields: tuple[str, ...] = ("audit_link",)
        if txn.type == TransactionType.SPEND:
            fields = ("job_link", "refundable", "refunds_list", *fields)
        elif txn.type == TransactionType.REFUND:
            fields = ("related_link", *fields)
        elif txn.transfer_id is not None:
            fields = ("transfer_id", "counterpart_link", *fields)
        return fields

    readonly_fields = (
        "user_label",
        "actor_label",
        "wallet_link",
        "signed_amount",
        "balance_after_points",
        "counterparty_label",
        "related_link",
        "counterpart_link",
        "job_link",
        "refundable",
        "refunds_list",
        "audit_link",
    )

    signed_amount = points_column("amount", "amount", signed=True)
    balance_after_points = points_column("balance_after", "balance after")

    @admin.display(description="other party")
    def counterparty_label(self, txn: Transaction) -> str:
        """The other user of a transfer (set per page by TransactionChangeList)."""
        other = getattr(txn, "counterparty", None)
        if other is None:
            return "—"
        direction = "to" if txn.type == TransactionType.TRANSFER_OUT else "from"
        return f"{direction} {other.user.get_username()} (user #{other.user_id})"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type:
        return TransactionChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: Any, search_term: str
    ) -> tuple[Any, bool]:
        by_transfer = search_transfer_id(queryset, search_term)
        if by_transfer is not None:
            return by_transfer
        return super().get_search_results(request, queryset, search_term)

    def audit_trail_url(self, txn: Transaction) -> str:
        from audit.models import AuditEvent

        return changelist_url(AuditEvent, transaction__id__exact=txn.pk)

    @admin.display(description="user")
    def user_label(self, txn: Transaction) -> str:
        return user_label(txn.user)

    @admin.display(description="actor")
    def actor_label(self, txn: Transaction) -> str:
        return user_label(txn.actor) if txn.actor_id else "— (system)"

    @admin.display(description="wallet")
    def wallet_link(self, txn: Transaction) -> SafeString | str:
        return admin_link(txn.wallet, f"Wallet #{txn.wallet_id} of {txn.user}")

    @admin.display(description="refund of")
    def related_link(self, txn: Transaction) -> SafeString | str:
        if txn.related_transaction_id is None:
            return "—"
        return admin_link(txn.related_transaction, f"spend {txn.related_transaction}")

    @admin.display(description="counterpart")
    def counterpart_link(self, txn: Transaction) -> SafeString | str:
        other = (
            Transaction.objects.filter(transfer_id=txn.transfer_id)
            .exclude(pk=txn.pk)
            .select_related("user")
            .first()
        )
        return admin_link(other, f"{other} ({other.user})" if other else None)

    @admin.display(description="job")
    def job_link(self, txn: Transaction) -> SafeString | str:
        job = Job.objects.filter(transaction=txn).select_related("job_type").first()
        return admin_link(job, job_label(job) if job else None)

    @admin.display(description="refundable remaining")
    def refundable(self, txn: Transaction) -> str:
        if txn.status != TransactionStatus.SUCCESS:
            return "0 points (not successful)"
        return f"{points(services.refundable_remaining(txn))} of {points(-txn.amount)} points"

    @admin.display(description="refunds")
    def refunds_list(self, txn: Transaction) -> SafeString | str:
        refunds = txn.refunds.order_by("created_at", "id")
        if not refunds:
            return "none"
        return format_html_join(
            ", ", '<a href="{}">{}</a>', ((admin_url(row), str(row)) for row in refunds)
        )

    @admin.display(description="audit trail")
    def audit_link(self, txn: Transaction) -> SafeString:
        from audit.models import AuditEvent

        url = changelist_url(AuditEvent, transaction__id__exact=txn.pk)
        return format_html('<a href="{}">Audit events of this transaction</a>', url)

    def extra_change_context(self, request: HttpRequest, txn: Transaction) -> dict[str, Any]:
        return {
            "can_refund": request.user.has_perm(REFUND_PERMISSION)
            and is_refundable_spend(txn)
            and services.refundable_remaining(txn) > 0
        }

    def get_urls(self) -> list:
        return [*self.refund_urls(), *super().get_urls()]


# --- API keys -----------------------------------------------------------------------------


class ApiTokenIssueForm(forms.ModelForm):
    """Issue a key: whom for, a label, how long. The key is generated, never typed."""

    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        help_text="Leave empty for the default lifetime (API_TOKEN_TTL).",
    )

    issuer: Any = None  # set per request by ApiTokenAdmin.get_form

    class Meta:
        model = ApiToken
        fields = ["user", "name"]

    def clean_user(self) -> Any:
        user = self.cleaned_data["user"]
        if not tokens.may_issue_for(self.issuer, user):
            raise forms.ValidationError(
                "You may only issue keys for users with no rights beyond your own."
            )
        return user


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Issue (`wallet.add_apitoken`), list and revoke (`wallet.delete_apitoken`) API keys.

    No page shows a key or its digest: the key appears once, in the answer to the form that
    issued it (not in a message, which would travel in a cookie); afterwards a key is known
    by its id, owner, label and dates. Revoking deletes the row: refused on the next request.
    """

    add_form = ApiTokenIssueForm
    list_display = ["id", "user", "name", "created", "expiry", "state"]
    list_filter = ["expiry"]
    search_fields = ["user__username", "name"]
    raw_id_fields = ["user"]
    readonly_fields = ["user", "name", "created", "expiry", "state"]
    fields = readonly_fields

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        return "expired" if obj.expiry <= timezone.now() else "active"

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        if obj is None:
            kwargs["form"] = self.add_form
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            form = type(form.__name__, (form,), {"issuer": request.user})
        return form

    def get_fields(self, request: HttpRequest, obj: Any = None):
        return ["user", "name", "expires_in_days"] if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a key is issued or revoked, never edited

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        days = form.cleaned_data.get("expires_in_days")
        expires_in = timedelta(days=days) if days else None
        request._issued_api_key = tokens.save_new_token(
            obj, expires_in=expires_in, actor=request.user
        )

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: Any = None):
        response = TemplateResponse(
            request,
            "admin/wallet/apitoken/issued.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "token": obj,
                "key": request._issued_api_key,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        tokens.revoke_tokens(obj.user, actor=request.user, token_ids=[obj.pk])

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for token in queryset.select_related("user"):
            tokens.revoke_tokens(token.user, actor=request.user, token_ids=[token.pk])


# Modules that register their own admin pages: four-eyes approvals
# (wallet/admin_approvals.py) and the finance report (wallet/admin_reports.py).
from wallet import admin_approvals, admin_reports  # noqa: E402, F401
