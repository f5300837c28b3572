"""Jobs in the back-office: jobs are read-only (their status and points are money
facts); job types are edited by finance staff, and every price change is audited
through `jobs.services.save_job_type`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from audit.backoffice.fields import StrictIntegerField
from audit.backoffice.filter_chips import FilterChipsMixin
from audit.backoffice.links import admin_link, admin_links, admin_url, changelist_url, user_label
from audit.backoffice.pages import (
    AuditTrailButtonMixin,
    BackOfficeMedia,
    ReadOnlyAdminMixin,
    points_column,
    pretty_json,
)
from audit.models import AuditEvent
from divine_whispers.points_format import points
from jobs import services
from jobs.models import Job, JobStatus, JobType
from wallet import permissions as wallet_permissions
from wallet import selectors
from wallet import services as wallet_services
from wallet.models import Wallet


class JobTypeForm(forms.ModelForm):
    """The price is typed as digits only: "10.5", "1e3" or "10.0" are refused, not coerced.
    A new price of an existing type must be confirmed: it applies to every purchase from
    then on, so the form says so, with the old price, before it saves."""

    price = StrictIntegerField(
        min_value=1, help_text="Whole points, charged on every new purchase of this job type."
    )
    confirm_price_change = forms.BooleanField(
        required=False,
        label="Confirm the new price",
        help_text="Needed when the price changes: it applies to the next purchase; jobs "
        "already bought keep the price they were charged.",
    )

    class Meta:
        model = JobType
        fields = ("code", "name", "description", "price", "active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["price"].max_magnitude = settings.WALLET_MAX_TRANSACTION_AMOUNT

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        old, new = self.initial.get("price"), data.get("price")
        changed = self.instance.pk is not None and new is not None and new != old
        if changed and not data.get("confirm_price_change"):
            self.add_error(
                "confirm_price_change",
                f"The price changes from {points(old)} to {points(new)} points. It applies to "
                "the next purchase (jobs already bought keep their price). Tick “Confirm the "
                "new price” to save it.",
            )
        return data


@admin.register(JobType)
class JobTypeAdmin(AuditTrailButtonMixin, admin.ModelAdmin):
    form = JobTypeForm
    # "Audit trail" (its price changes) instead of History, which only lists admin edits.
    change_form_template = "admin/jobs/jobtype/change_form.html"
    Media = BackOfficeMedia
    list_display = ("code", "name", "price", "active", "updated_at")
    list_filter = ("active",)
    search_fields = ("code", "name")
    fields = (
        "code",
        "name",
        "description",
        "price",
        "confirm_price_change",
        "active",
        "price_history",
        "updated_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: JobType | None = None) -> tuple:
        # The code is what clients send and what old jobs point at: fixed once created.
        if obj is None:
            return ("price_history", "updated_at")
        return ("code", "price_history", "updated_at")

    def has_delete_permission(self, request: HttpRequest, obj: JobType | None = None) -> bool:
        # Jobs keep pointing at their type; retire a type by unticking "active".
        return False

    @admin.display(description="price history")
    def price_history(self, job_type: JobType) -> SafeString | str:
        if job_type.pk is None:
            return "—"
        events = (
            AuditEvent.objects.filter(
                action=services.PRICE_CHANGED_ACTION, metadata__code=job_type.code
            )
            .select_related("actor")
            .order_by("-id")[:10]
        )
        if not events:
            return "no recorded change"
        items = format_html_join(
            "",
            '<li><a href="{}">{}</a>: {} → {} points by {}</li>',
            (
                (
                    admin_url(event),
                    f"{timezone.localtime(event.created_at):%Y-%m-%d %H:%M:%S %Z}",
                    points(event.metadata.get("old")),
                    points(event.metadata.get("new")),
                    event.actor.get_username() if event.actor_id else "the system",
                )
                for event in events
            ),
        )
        return format_html('<ul class="price-history">{}</ul>', items)

    def audit_trail_url(self, job_type: JobType) -> str:
        return changelist_url(AuditEvent, action=services.PRICE_CHANGED_ACTION, q=job_type.code)

    def save_model(
        self, request: HttpRequest, obj: JobType, form: forms.Form, change: bool
    ) -> None:
        # The admin wraps this in its own DB transaction; the service's atomic block
        # nests inside it, so the price and its audit event commit together.
        services.save_job_type(job_type=obj, actor=request.user)


class JobStatusFilter(admin.SimpleListFilter):
    """By status, with a refunded job split by what the ledger says: refunded in full,
    or in part (the status alone says "refunded" for both)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = [choice for choice in JobStatus.choices if choice[0] != JobStatus.REFUNDED]
        return [*choices, ("refunded", "Refunded in full"), ("partial", "Partially refunded")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "partial":
            return queryset.filter(refunded_points__gt=0, refunded_points__lt=F("points_used"))
        if value == JobStatus.REFUNDED:
            return queryset.filter(status=value, refunded_points__gte=F("points_used"))
        if value in JobStatus.values:
            return queryset.filter(status=value)
        return queryset


@admin.register(Job)
class JobAdmin(AuditTrailButtonMixin, FilterChipsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    change_form_template = "admin/jobs/job/change_form.html"
    Media = BackOfficeMedia
    list_display = (
        "id",
        "created_at",
        "user",
        "job_type",
        "status_label",
        "points_used_points",
        "transaction_link",
    )
    list_select_related = ("user", "job_type", "transaction")
    list_filter = (JobStatusFilter, "job_type", ("created_at", admin.DateFieldListFilter))
    search_fields = (
        "user__username",
        "user__email",
        "transaction__reference_id",
        "id__exact",
    )
    search_help_text = "Search by username, email, spend reference or job id."
    date_hierarchy = "created_at"
    show_full_result_count = False
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "owner",
                    "wallet_link",
                    "job_type",
                    "status_label",
                    "points_used_points",
                    "transaction_link",
                    "refunds_list",
                )
            },
        ),
        ("Work", {"fields": ("input_pretty", "result_pretty", "error", "attempts")}),
        (
            "Timeline",
            {"fields": ("created_at", "started_at", "heartbeat_at", "finished_at", "updated_at")},
        ),
    )

    readonly_fields = (
        "owner",
        "input_pretty",
        "result_pretty",
        "status_label",
        "wallet_link",
        "points_used_points",
        "transaction_link",
        "refunds_list",
    )

    points_used_points = points_column("points_used", "points used")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # What the ledger refunded of each job's spend: the status label and filter.
        return (
            super()
            .get_queryset(request)
            .annotate(refunded_points=selectors.refunded_subquery("transaction_id"))
        )

    @admin.display(description="status", ordering="status")
    def status_label(self, job: Job) -> str:
        return job.status_label()

    @admin.display(description="input")
    def input_pretty(self, job: Job) -> SafeString:
        return pretty_json(job.input)

    @admin.display(description="result")
    def result_pretty(self, job: Job) -> SafeString:
        return pretty_json(job.result)

    def extra_change_context(self, request: HttpRequest, job: Job) -> dict[str, Any]:
        """A Refund… shortcut to the spend's refund form, for staff who may refund, while
        something of the spend remains refundable (the form itself re-checks)."""
        refundable = request.user.has_perm(wallet_permissions.REFUND) and (
            wallet_services.refundable_remaining(job.transaction) > 0
        )
        return {"refund_url": admin_url(job.transaction, "refund") if refundable else ""}

    def audit_trail_url(self, job: Job) -> str:
        return changelist_url(AuditEvent, transaction__id__exact=job.transaction_id)

    @admin.display(description="user")
    def owner(self, job: Job) -> str:
        return user_label(job.user)

    @admin.display(description="spend", ordering="transaction")
    def transaction_link(self, job: Job) -> SafeString | str:
        return admin_link(job.transaction)

    @admin.display(description="wallet")
    def wallet_link(self, job: Job) -> SafeString | str:
        wallet = Wallet.objects.filter(user_id=job.user_id).first()
        return admin_link(wallet)

    @admin.display(description="refunds")
    def refunds_list(self, job: Job) -> SafeString | str:
        return admin_links(job.transaction.refunds.order_by("created_at", "id"))
