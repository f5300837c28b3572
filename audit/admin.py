"""The audit trail in the back-office: read-only, searchable, linked to its wallet and
transaction. Events are append-only and hash-chained; the admin can only show them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit.backoffice.csv_export import CsvExportMixin
from audit.backoffice.filter_chips import FilterChipsMixin
from audit.backoffice.links import admin_link, user_label
from audit.backoffice.pages import (
    BackOfficeMedia,
    ReadOnlyAdminMixin,
    brand_site,
    points_column,
    pretty_json,
)
from audit.labels import ACTION_LABELS, action_label
from audit.models import AuditEvent, LedgerVerification

# The whole back-office's name and chrome, set once (Django's autodiscovery imports this).
brand_site(admin.site)

# The CSV export's columns (header, field path).
AUDIT_EVENT_COLUMNS = (
    ("id", "id"),
    ("created_at", "created_at"),
    ("action", "action"),
    ("actor_id", "actor_id"),
    ("actor", "actor__username"),
    ("wallet_id", "wallet_id"),
    ("transaction_id", "transaction_id"),
    ("amount", "amount"),
    ("balance_before", "balance_before"),
    ("balance_after", "balance_after"),
    ("request_id", "request_id"),
    ("ip", "ip"),
    ("metadata", "metadata"),
    ("chain", "chain"),
    ("hash", "hash"),
)


class ActionFilter(admin.SimpleListFilter):
    """By action, with human labels; the choices come from the label table, not from a
    DISTINCT over every event (which grows with the trail)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return sorted(ACTION_LABELS.items(), key=lambda item: item[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(action=self.value()) if self.value() else queryset


class ActorFilter(admin.SimpleListFilter):
    """By who acted: each staff member, or the system (no actor). Any other user can be
    given as `?actor=<user id>` (a customer acts on their own wallet)."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")
        return [("system", "— (system)")] + [
            (str(user.pk), user.get_username()) for user in staff[:200]
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "system":
            return queryset.filter(actor__isnull=True)
        if value and value.isdigit():
            return queryset.filter(actor_id=int(value))
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(CsvExportMixin, FilterChipsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    csv_columns = AUDIT_EVENT_COLUMNS
    # No History button: events are never edited, the trail is their history.
    change_form_template = "admin/audit/auditevent/change_form.html"
    Media = BackOfficeMedia
    list_display = (
        "id",
        "created_at",
        "action_name",
        "actor",
        "wallet_link",
        "transaction_link",
        "amount_points",
        "balance_before_points",
        "balance_after_points",
    )
    list_select_related = ("actor", "wallet__user", "transaction")
    list_filter = (ActionFilter, ActorFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = (
        "action",
        "actor__username",
        "wallet__user__username",
        "wallet__user__email",
        "request_id",
        "transaction__reference_id",
        "metadata__reason",
        "metadata__adjustment_reason",
        "metadata__decision_reason",
        "metadata__code",
    )
    search_help_text = (
        "Search by action code, actor, wallet owner (username or email), request id, "
        "transaction reference or reason."
    )
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
                    "action_name",
                    "actor_label",
                    "wallet_link",
                    "transaction_link",
                    "amount_points",
                    "balance_before_points",
                    "balance_after_points",
                    "metadata_pretty",
                )
            },
        ),
        ("Request", {"fields": ("request_id", "ip")}),
        (
            "Hash chain",
            {"fields": ("chain", "previous_link", "verified_mark", "key_id", "prev_hash", "hash")},
        ),
    )

    readonly_fields = (
        "action_name",
        "actor_label",
        "wallet_link",
        "transaction_link",
        "amount_points",
        "balance_before_points",
        "balance_after_points",
        "metadata_pretty",
        "previous_link",
        "verified_mark",
    )

    @admin.display(description="previous event")
    def previous_link(self, event: AuditEvent) -> SafeString | str:
        """The event this one chains onto (its `prev_hash` is that event's hash)."""
        previous = (
            AuditEvent.objects.filter(chain=event.chain, id__lt=event.pk).order_by("-id").first()
        )
        if previous is None:
            return "none: the first event of its chain"
        label = f"Audit #{previous.pk} {action_label(previous.action)}"
        if previous.hash != event.prev_hash:
            return format_html("{} — its hash does not match: run verify_ledger", label)
        return admin_link(previous, label)

    @admin.display(description="verified")
    def verified_mark(self, event: AuditEvent) -> SafeString | str:
        """Whether the last clean `verify_ledger` run came after this event was written."""
        clean = (
            LedgerVerification.objects.filter(result=LedgerVerification.Result.OK)
            .order_by("-finished_at")
            .first()
        )
        if clean is None:
            return "No clean verify_ledger run recorded yet."
        when = f"{timezone.localtime(clean.finished_at):%Y-%m-%d %H:%M:%S %Z}"
        if clean.finished_at >= event.created_at:
            return format_html(
                '<span class="chain-verified">✔ Chain verified up to here</span> '
                "(verify_ledger, clean at {})",
                when,
            )
        return f"Written after the last clean verify_ledger run ({when}): not verified yet."

    @admin.display(description="action", ordering="action")
    def action_name(self, event: AuditEvent) -> SafeString:
        label = action_label(event.action)
        if label == event.action:
            return format_html("<code>{}</code>", event.action)
        return format_html('{} <span class="quiet">({})</span>', label, event.action)

    amount_points = points_column("amount", "amount", signed=True)
    balance_before_points = points_column("balance_before", "balance before")
    balance_after_points = points_column("balance_after", "balance after")

    @admin.display(description="actor")
    def actor_label(self, event: AuditEvent) -> str:
        return user_label(event.actor) if event.actor_id else "— (system)"

    @admin.display(description="wallet", ordering="wallet")
    def wallet_link(self, event: AuditEvent) -> SafeString | str:
        if event.wallet_id is None:
            return "—"
        return admin_link(event.wallet, f"Wallet #{event.wallet_id} of {event.wallet.user}")

    @admin.display(description="transaction", ordering="transaction")
    def transaction_link(self, event: AuditEvent) -> SafeString | str:
        return admin_link(event.transaction)

    @admin.display(description="metadata")
    def metadata_pretty(self, event: AuditEvent) -> SafeString:
        return pretty_json(event.metadata)
