"""The audit trail in the back-office: read-only, searchable, linked to its wallet and
transaction. Events are append-only and hash-chained; the admin can only show them."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit.models import AuditEvent
from wallet.admin import ReadOnlyAdminMixin, admin_link, user_label
from wallet.admin_exports import AUDIT_EVENT_COLUMNS, CsvExportMixin


@admin.register(AuditEvent)
class AuditEventAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    csv_columns = AUDIT_EVENT_COLUMNS
    list_display = (
        "id",
        "created_at",
        "action",
        "actor",
        "wallet_link",
        "transaction_link",
        "amount",
        "balance_before",
        "balance_after",
    )
    list_select_related = ("actor", "wallet__user", "transaction")
    list_filter = ("action", ("created_at", admin.DateFieldListFilter))
    search_fields = (
        "action",
        "actor__username",
        "wallet__user__username",
        "wallet__user__email",
        "request_id",
        "transaction__reference_id",
    )
    search_help_text = "Search by action, actor, wallet owner (username or email), request id."
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "created_at",
                    "action",
                    "actor_label",
                    "wallet_link",
                    "transaction_link",
                    "amount",
                    "balance_before",
                    "balance_after",
                    "metadata_pretty",
                )
            },
        ),
        ("Request", {"fields": ("request_id", "ip")}),
        ("Hash chain", {"fields": ("chain", "key_id", "prev_hash", "hash")}),
    )

    readonly_fields = ("actor_label", "wallet_link", "transaction_link", "metadata_pretty")

    @admin.display(description="actor")
    def actor_label(self, event: AuditEvent) -> str:
        return user_label(event.actor) if event.actor_id else "— (system)"

    @admin.display(description="wallet", ordering="wallet")
    def wallet_link(self, event: AuditEvent) -> SafeString | str:
        if event.wallet_id is None:
            return "—"
        return admin_link(event.wallet, f"#{event.wallet_id} {event.wallet.user}")

    @admin.display(description="transaction", ordering="transaction")
    def transaction_link(self, event: AuditEvent) -> SafeString | str:
        return admin_link(event.transaction)

    @admin.display(description="metadata")
    def metadata_pretty(self, event: AuditEvent) -> SafeString:
        text = json.dumps(event.metadata, indent=2, sort_keys=True, default=str)
        return format_html("<pre>{}</pre>", text)
