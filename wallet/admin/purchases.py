"""Buying points in the back-office: packages (finance edits them; every price change is
audited through `services.save_package`), purchases (read-only: package, amounts,
provider ids, clawbacks, the provider's events about them; finance refunds one through
Stripe in two steps) and the webhook inbox with its errors and an audited replay action.

Purchases and events are money facts: read-only like every ledger admin. A replay only
re-runs processing through the services, which book nothing twice.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from audit.backoffice.fields import StrictIntegerField
from audit.backoffice.links import admin_link, admin_url
from audit.backoffice.pages import BackOfficeMedia, ReadOnlyAdminMixin, points_column
from audit.models import AuditEvent
from audit.services import record_system_event
from divine_whispers.errors import DomainError
from wallet import services
from wallet.models import Clawback, PointPackage, ProviderEvent, Purchase
from wallet.permissions import REFUND_PURCHASE
from wallet.services import provider_events, purchases

REPLAYED_ACTION = "provider_event.replayed"


class PointPackageForm(forms.ModelForm):
    """Points and price typed as digits only ("10.5" or "1e3" is refused, not coerced)."""

    points = StrictIntegerField(min_value=1, help_text="Whole points credited per purchase.")
    price = StrictIntegerField(min_value=1, help_text="Minor units of the currency (cents).")

    class Meta:
        model = PointPackage
        fields = ("code", "name", "points", "price", "currency", "active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["points"].max_magnitude = settings.WALLET_MAX_TRANSACTION_AMOUNT
        self.fields["price"].max_magnitude = 10**12


@admin.register(PointPackage)
class PointPackageAdmin(admin.ModelAdmin):
    form = PointPackageForm
    list_display = ("code", "name", "points", "price", "currency", "active")
    list_filter = ("active",)
    fields = ("code", "name", "points", "price", "currency", "active", "price_history")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        # The code is what clients send and what old purchases point at: fixed once created.
        return ("price_history",) if obj is None else ("code", "price_history")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # purchases keep pointing at their package; retire it instead

    @admin.display(description="price history")
    def price_history(self, package: PointPackage) -> SafeString | str:
        if package.pk is None:
            return "—"
        events = AuditEvent.objects.filter(
            action=purchases.PACKAGE_PRICE_CHANGED, metadata__code=package.code
        ).order_by("-id")[:10]
        if not events:
            return "no recorded change"
        return format_html_join(
            "<br>",
            '<a href="{}">{}</a>: {} → {} by {}',
            (
                (admin_url(e), f"{e.created_at:%Y-%m-%d %H:%M}", e.metadata.get("old"),
                 e.metadata.get("new"), e.actor or "system")
                for e in events
            ),
        )  # fmt: skip

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        services.save_package(package=obj, actor=request.user)


class ClawbackInline(admin.TabularInline):
    model = Clawback
    extra = 0
    can_delete = False
    fields = ("kind", "source_id", "money", "points", "transaction", "reversed", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    Media = BackOfficeMedia
    inlines = [ClawbackInline]
    list_display = (
        "id", "created_at", "user", "package", "points_points", "amount", "currency",
        "status", "provider_payment_id",
    )  # fmt: skip
    list_filter = ("status", "package")
    search_fields = ("provider_payment_id", "user__username", "reference_id")
    readonly_fields = ("credit_row", "wallet_debt", "events")
    points_points = points_column("points", "points")
    actions = ["refund_through_provider"]

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REFUND_PURCHASE)

    @admin.action(description="Refund through Stripe (claws the points back first)",
                  permissions=["refund"])  # fmt: skip
    def refund_through_provider(self, request: HttpRequest, queryset: QuerySet[Purchase]):
        """Two steps: a confirmation page, then one service call per purchase."""
        if request.POST.get("confirm") != "yes":
            context = {**self.admin_site.each_context(request), "purchases": list(queryset)}
            return TemplateResponse(request, "admin/wallet/purchase/confirm_refund.html", context)
        for purchase in queryset:
            try:
                services.refund_purchase(purchase_id=purchase.pk, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"#{purchase.pk}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"#{purchase.pk}: refunded.", messages.SUCCESS)
        return None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Purchase]:
        return super().get_queryset(request).select_related("user", "package")

    @admin.display(description="credit")
    def credit_row(self, purchase: Purchase) -> SafeString | str:
        return admin_link(purchase.credit)

    @admin.display(description="wallet debt")
    def wallet_debt(self, purchase: Purchase) -> str:
        wallet = getattr(purchase.user, "wallet", None)
        return f"{wallet.debt:,d} points" if wallet is not None else "—"

    @admin.display(description="provider events")
    def events(self, purchase: Purchase) -> SafeString | str:
        if not purchase.provider_payment_id:
            return "none"
        found = ProviderEvent.objects.filter(body__contains=purchase.provider_payment_id)[:50]
        if not found:
            return "none"
        return format_html_join(
            "<br>",
            '<a href="{}">{}</a> {} — {}',
            ((admin_url(e), f"{e.received_at:%Y-%m-%d %H:%M:%S}", e.type, e.status)
             for e in found),
        )  # fmt: skip


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    Media = BackOfficeMedia
    list_display = ("id", "received_at", "event_id", "type", "status", "deliveries", "attempts")
    list_filter = ("status", "type", "signature_valid")
    search_fields = ("event_id", "type", "error")
    actions = ["replay"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("wallet.change_providerevent")

    @admin.action(description="Replay processing of the selected events", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[ProviderEvent]) -> None:
        replayed = 0
        for event in queryset.filter(signature_valid=True):
            status = provider_events.process_event(event)
            record_system_event(
                action=REPLAYED_ACTION,
                actor=request.user,
                metadata={"event_id": event.event_id, "type": event.type, "status": status},
            )
            replayed += 1
        self.message_user(request, f"{replayed} event(s) replayed.", messages.SUCCESS)
