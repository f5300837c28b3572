"""Back-office for support and finance staff: look up wallets and their ledger, refund a
spend, adjust points.

Ledger rows are append-only, so these admins never edit or delete one: every page is
read-only and money moves only through the two staff flows below, which call the
services (`wallet.services.refund` / `adjust`) with `actor=request.user`. Each flow is a
dedicated view on the object page, in the style of Django's own password-change view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs.models import Job
from wallet import services
from wallet.admin_exports import TRANSACTION_COLUMNS, CsvExportMixin
from wallet.admin_timeline import TimelineMixin
from wallet.errors import DomainError
from wallet.forms import AdjustPointsForm, RefundForm, StaffOperationForm
from wallet.models import Transaction, TransactionStatus, TransactionType, Wallet

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
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"{self.opts.verbose_name} {object_id!r} does not exist.")
        return obj

    def _submit_operation(
        self,
        request: HttpRequest,
        form_class: type[StaffOperationForm],
        *,
        perform: Callable[[dict], Any],
        describe: Callable[[Any], str],
        redirect_to: str,
    ) -> tuple[StaffOperationForm, HttpResponse | None]:
        """Bind the form and, on a valid POST, call the service once.

        A domain error becomes a form error (never a 500); success is a message and a
        redirect, returned as the second item so the view can hand it back.
        """
        if request.method != "POST":
            return form_class(), None
        form = form_class(request.POST)
        if not form.is_valid():
            return form, None
        try:
            result = perform(form.cleaned_data)
        except DomainError as error:
            form.add_domain_error(error)
            return form, None
        messages.success(request, describe(result))
        return form, HttpResponseRedirect(redirect_to)

    def _render_operation(
        self, request: HttpRequest, template: str, form: StaffOperationForm, **context: Any
    ) -> TemplateResponse:
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "form": form,
                "is_popup": False,
                "has_view_permission": True,
                **context,
            },
        )


# --- Wallet -----------------------------------------------------------------------------


@admin.register(Wallet)
class WalletAdmin(TimelineMixin, StaffOperationMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    change_form_template = "admin/wallet/wallet/change_form.html"
    adjust_template = "admin/wallet/wallet/adjust_points.html"
    list_display = ("id", "user", "user_email", "balance", "updated_at")
    list_display_links = ("id", "user")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "user__id__exact")
    search_help_text = "Search by username, email or user id."
    list_filter = (("updated_at", admin.DateFieldListFilter),)
    ordering = ("-updated_at", "-id")
    show_full_result_count = False
    fields = (
        "owner",
        "balance",
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

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Wallet | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self._recent_activity(request, obj))
            context["can_adjust"] = request.user.has_perm(ADJUST_PERMISSION)
        return super().render_change_form(request, context, add, change, form_url, obj)

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
        return [
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_points_view),
                name="wallet_wallet_adjust",
            ),
            *super().get_urls(),
        ]

    def adjust_points_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Adjust points: a signed amount with a reason, through `services.adjust`."""
        wallet = self._operation_object(request, object_id, ADJUST_PERMISSION)

        def adjust(data: dict) -> services.OperationResult:
            return services.adjust(
                user=wallet.user_id,
                amount=data["amount"],
                reason=data["reason"],
                actor=request.user,
                reference_id=data["reference"],
            )

        def describe(result: services.OperationResult) -> str:
            row = result.transaction
            prefix = "This adjustment was already recorded. " if result.replayed else ""
            return (
                f"{prefix}Adjusted the wallet of {wallet.user} by {row.amount:+d} points "
                f"(transaction #{row.pk}). New balance: {row.balance_after} points."
            )

        form, done = self._submit_operation(
            request,
            AdjustPointsForm,
            perform=adjust,
            describe=describe,
            redirect_to=admin_url(wallet),
        )
        if done is not None:
            return done
        wallet.refresh_from_db(fields=["balance"])
        return self._render_operation(
            request,
            self.adjust_template,
            form,
            title=f"Adjust points: {wallet.user}",
            original=wallet,
            wallet=wallet,
        )


# --- Transaction ------------------------------------------------------------------------


@admin.register(Transaction)
class TransactionAdmin(CsvExportMixin, StaffOperationMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    csv_columns = TRANSACTION_COLUMNS
    change_form_template = "admin/wallet/transaction/change_form.html"
    refund_template = "admin/wallet/transaction/refund.html"
    list_display = (
        "id",
        "created_at",
        "user",
        "type",
        "signed_amount",
        "status",
        "balance_after",
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
    search_help_text = "Search by username, email, reference, description or transaction id."
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
                        "balance_after",
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
        "related_link",
        "counterpart_link",
        "job_link",
        "refundable",
        "refunds_list",
        "audit_link",
    )

    @admin.display(description="amount", ordering="amount")
    def signed_amount(self, txn: Transaction) -> str:
        return f"{txn.amount:+d}"

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
        return f"{services.refundable_remaining(txn)} of {-txn.amount} points"

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

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Transaction | None = None,
    ) -> HttpResponse:
        context["can_refund"] = (
            obj is not None
            and request.user.has_perm(REFUND_PERMISSION)
            and is_refundable_spend(obj)
            and services.refundable_remaining(obj) > 0
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="wallet_transaction_refund",
            ),
            *super().get_urls(),
        ]

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Refund all or part of a spend, through `services.refund`."""
        spend = self._operation_object(request, object_id, REFUND_PERMISSION)

        def refund(data: dict) -> services.OperationResult:
            return services.refund(
                spend_txn=spend,
                amount=data["amount"],
                reason=data["reason"],
                actor=request.user,
                reference_id=data["reference"],
            )

        def describe(result: services.OperationResult) -> str:
            row = result.transaction
            prefix = "This refund was already recorded. " if result.replayed else ""
            return (
                f"{prefix}Refunded {row.amount} points of spend #{spend.pk} to "
                f"{spend.user} (transaction #{row.pk}). "
                f"New balance: {row.balance_after} points."
            )

        form, done = self._submit_operation(
            request, RefundForm, perform=refund, describe=describe, redirect_to=admin_url(spend)
        )
        if done is not None:
            return done
        refundable = is_refundable_spend(spend)
        return self._render_operation(
            request,
            self.refund_template,
            form,
            title=f"Refund spend #{spend.pk} of {spend.user}",
            original=spend,
            spend=spend,
            spent=abs(spend.amount),
            is_refundable=refundable,
            remaining=services.refundable_remaining(spend) if refundable else 0,
            refunds=list(spend.refunds.order_by("created_at", "id")),
            job=Job.objects.filter(transaction=spend).select_related("job_type").first(),
            balance=Wallet.objects.filter(pk=spend.wallet_id).values_list("balance", flat=True)[0],
        )


def is_refundable_spend(txn: Transaction) -> bool:
    return txn.type == TransactionType.SPEND and txn.status == TransactionStatus.SUCCESS


# The finance report page registers itself (wallet/admin_reports.py).
from wallet import admin_reports  # noqa: E402, F401
