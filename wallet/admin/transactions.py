"""The ledger in the back-office: the transaction list (CSV export, transfer ids searchable,
the other party of a transfer) and the transaction page, where a spend is refunded
(refund_flow.py).

Ledger rows are append-only, so the admin never edits or deletes one: every page is
read-only and money moves only through the refund flow, which calls `services.refund`
with `actor=request.user`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit.backoffice.csv_export import CsvExportMixin
from audit.backoffice.filter_chips import FilterChipsMixin
from audit.backoffice.links import admin_link, admin_links, changelist_url, user_label
from audit.backoffice.pages import (
    AuditTrailButtonMixin,
    BackOfficeMedia,
    ReadOnlyAdminMixin,
    points_column,
    short_reference,
)
from audit.models import AuditEvent
from divine_whispers.points_format import points, refund_state
from jobs.models import Job
from wallet import permissions, selectors, services
from wallet.admin.refund_flow import RefundFlowMixin, is_refundable_spend
from wallet.admin.staff_flow import StaffOperationMixin
from wallet.models import Transaction, TransactionStatus, TransactionType

# The CSV export's columns (header, field path).
TRANSACTION_COLUMNS = (
    ("id", "id"),
    ("created_at", "created_at"),
    ("user_id", "user_id"),
    ("username", "user__username"),
    ("wallet_id", "wallet_id"),
    ("type", "type"),
    ("amount", "amount"),
    ("status", "status"),
    ("balance_after", "balance_after"),
    ("reference_id", "reference_id"),
    ("description", "description"),
    ("related_transaction_id", "related_transaction_id"),
    ("transfer_id", "transfer_id"),
    ("actor_id", "actor_id"),
)


def job_label(job: Job) -> str:
    return f"Job #{job.pk} {job.job_type.name} ({job.status_label()})"


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
    """The transaction list, with each transfer row's other party attached."""

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


@admin.register(Transaction)
class TransactionAdmin(
    AuditTrailButtonMixin,
    CsvExportMixin,
    FilterChipsMixin,
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
        "reference_short",
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
            fields = ("refund_state_label", "job_link", "refundable", "refunds_list", *fields)
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
        "reference_short",
        "related_link",
        "counterpart_link",
        "job_link",
        "refundable",
        "refund_state_label",
        "refunds_list",
        "audit_link",
    )

    signed_amount = points_column("amount", "amount", signed=True)
    balance_after_points = points_column("balance_after", "balance after")

    @admin.display(description="reference", ordering="reference_id")
    def reference_short(self, txn: Transaction) -> SafeString | str:
        return short_reference(txn.reference_id)

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
        return admin_link(txn.related_transaction)

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
        job = (
            Job.objects.filter(transaction=txn)
            .select_related("job_type")
            .annotate(refunded_points=selectors.refunded_subquery("transaction_id"))
            .first()
        )
        return admin_link(job, job_label(job) if job else None)

    @admin.display(description="refundable remaining")
    def refundable(self, txn: Transaction) -> str:
        if txn.status != TransactionStatus.SUCCESS:
            return "0 points (not successful)"
        return f"{points(services.refundable_remaining(txn))} of {points(-txn.amount)} points"

    @admin.display(description="refunded")
    def refund_state_label(self, txn: Transaction) -> str:
        refunded = selectors.refunded_totals([txn.pk]).get(txn.pk, 0)
        return refund_state(refunded, -txn.amount)

    @admin.display(description="refunds")
    def refunds_list(self, txn: Transaction) -> SafeString | str:
        return admin_links(txn.refunds.order_by("created_at", "id"))

    @admin.display(description="audit trail")
    def audit_link(self, txn: Transaction) -> SafeString:
        url = changelist_url(AuditEvent, transaction__id__exact=txn.pk)
        return format_html('<a href="{}">Audit events of this transaction</a>', url)

    def extra_change_context(self, request: HttpRequest, txn: Transaction) -> dict[str, Any]:
        return {
            "can_refund": request.user.has_perm(permissions.REFUND)
            and is_refundable_spend(txn)
            and services.refundable_remaining(txn) > 0
        }

    def get_urls(self) -> list:
        return [*self.refund_urls(), *super().get_urls()]
