"""The admin's two-step money flows: refund a spend, adjust a wallet's points.

Step one is a form; it moves nothing and ends in a redirect to a confirmation page
(Post/Redirect/Get) carrying a signed token (wallet/confirmations.py) that binds the
exact amount, the reason, a one-time reference and the state the staff member saw.
Step two shows exactly what will happen — amount, new balance, what remains refundable,
warnings — and books it through the services, which re-check that state under the
wallet lock. What Back + resubmit can do:

* Back to the confirmation page after booking: it says the refund is already booked
  (found by its reference) and offers nothing to click; re-posting it replays.
* Back to the form and submit again: a *new* confirmation page, which shows the refund
  just made and requires ticking "I know it was refunded minutes ago" to go on.
* Any confirmation whose state moved on (another refund, a balance change) is refused
  with an explanation, and nothing is booked.

Each view is a ModelAdmin method (mixins below), registered by `flow_urls`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from divine_whispers.errors import DomainError, StaleConfirmation
from jobs.models import Job
from wallet import confirmations, services
from wallet.formatting import points, signed_points
from wallet.forms import (
    REFUND_ALL,
    AdjustPointsForm,
    RefundForm,
    StaffOperationForm,
    domain_error_message,
)
from wallet.models import (
    ApprovalRequest,
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
)

REFUND_PERMISSION = "wallet.refund_transaction"
ADJUST_PERMISSION = "wallet.adjust_points"
CONFIRM_TEMPLATE = "admin/wallet/confirm_operation.html"


def _object_url(obj: Any, view: str = "change") -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


def _confirm_url(obj: Any, view: str, token: str) -> str:
    return f"{_object_url(obj, view)}?{urlencode({'token': token})}"


class ConfirmedFlowMixin:
    """Rendering and bookkeeping shared by the two-step flows (and the approval views)."""

    def _render_page(self, request: HttpRequest, template: str, **context: Any) -> HttpResponse:
        # admin_view() marks every page never_cache (no-store): Back re-asks the server.
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "is_popup": False,
                "has_view_permission": True,
                **context,
            },
        )

    def _render_form(
        self, request: HttpRequest, template: str, form: StaffOperationForm, **context: Any
    ) -> HttpResponse:
        return self._render_page(request, template, form=form, **context)

    def _read_plan(self, request: HttpRequest, kind: str, obj: Any) -> tuple[str, dict | None]:
        """(token, its payload) from the page's GET or POST; (why not, None) when unusable."""
        token = request.POST.get("token") if request.method == "POST" else request.GET.get("token")
        try:
            return token, confirmations.read(
                token, kind, object_id=obj.pk, staff_id=request.user.pk
            )
        except confirmations.ConfirmationError as problem:
            return str(problem), None

    def _log_action(self, request: HttpRequest, obj: Any, message: str) -> None:
        """Django's admin log, read by the home page's "Recent actions": the entry links
        to `obj` (the row booked, or the approval request) and reads as what was done,
        not as the object's name. The audit trail stays the record of truth."""
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
            object_repr=message[: LogEntry._meta.get_field("object_repr").max_length],
            action_flag=CHANGE,
            change_message=message,
        )


# --- Refund -----------------------------------------------------------------------------


def is_refundable_spend(txn: Transaction) -> bool:
    return txn.type == TransactionType.SPEND and txn.status == TransactionStatus.SUCCESS


def refund_facts(spend: Transaction) -> dict[str, Any]:
    """Everything the refund pages show about a spend, read now."""
    refundable = is_refundable_spend(spend)
    refunds = list(spend.refunds.select_related("actor").order_by("created_at", "id"))
    since = timezone.now() - timedelta(minutes=settings.ADMIN_RECENT_REFUND_MINUTES)
    return {
        "spend": spend,
        "spent": abs(spend.amount),
        "is_refundable": refundable,
        "remaining": services.refundable_remaining(spend) if refundable else 0,
        "refunds": refunds,
        "recent_refunds": [row for row in refunds if row.created_at >= since],
        "recent_minutes": settings.ADMIN_RECENT_REFUND_MINUTES,
        "job": Job.objects.filter(transaction=spend).select_related("job_type").first(),
        "balance": Wallet.objects.filter(pk=spend.wallet_id).values_list("balance", flat=True)[0],
    }


def _minutes_ago(moment) -> str:
    minutes = int((timezone.now() - moment).total_seconds() // 60)
    return "less than a minute ago" if minutes < 1 else f"{minutes} minute(s) ago"


def _refund_line(row: Transaction) -> str:
    who = row.actor.get_username() if row.actor_id else "the system"
    return (
        f"Refund #{row.pk} of {signed_points(row.amount)} points by {who}, "
        f"{_minutes_ago(row.created_at)} ({row.description or 'no reason given'})"
    )


class RefundFlowMixin(ConfirmedFlowMixin):
    refund_template = "admin/wallet/transaction/refund.html"

    def refund_urls(self) -> list:
        return [
            path(
                "<path:object_id>/refund/confirm/",
                self.admin_site.admin_view(self.refund_confirm_view),
                name="wallet_transaction_refund_confirm",
            ),
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="wallet_transaction_refund",
            ),
        ]

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Step one: what to refund and why. Moves nothing; leads to the confirmation."""
        spend = self._operation_object(request, object_id, REFUND_PERMISSION)
        facts = refund_facts(spend)
        if request.method != "POST":
            form = RefundForm(remaining=facts["remaining"])
        else:
            form = RefundForm(request.POST, remaining=facts["remaining"])
            if form.is_valid() and facts["is_refundable"] and facts["remaining"] > 0:
                data = form.cleaned_data
                amount = facts["remaining"] if data["mode"] == REFUND_ALL else data["amount"]
                if amount > facts["remaining"]:
                    form.add_error(
                        "amount",
                        f"Only {points(facts['remaining'])} points remain refundable "
                        "(refund_exceeds_original).",
                    )
                else:
                    token = confirmations.issue(
                        "refund",
                        object_id=spend.pk,
                        staff_id=request.user.pk,
                        amount=amount,
                        mode=data["mode"],
                        reason=data["reason"],
                        reference=confirmations.new_reference(),
                        remaining=facts["remaining"],
                    )
                    return HttpResponseRedirect(_confirm_url(spend, "refund_confirm", token))
        return self._render_form(
            request,
            self.refund_template,
            form,
            title=f"Refund spend #{spend.pk} of {spend.user}",
            original=spend,
            **facts,
        )

    def refund_confirm_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Step two: exactly what will happen, then one booking (or a replay of it)."""
        spend = self._operation_object(request, object_id, REFUND_PERMISSION)
        page = {
            "title": f"Confirm the refund of spend #{spend.pk}",
            "original": spend,
            "operation_name": "Refund",
            "start_over_url": _object_url(spend, "refund"),
            "cancel_url": _object_url(spend),
        }
        token, plan = self._read_plan(request, "refund", spend)
        if plan is None:
            return self._render_page(request, CONFIRM_TEMPLATE, problem=token, **page)
        booked = Transaction.objects.filter(
            wallet_id=spend.wallet_id, type=TransactionType.REFUND, reference_id=plan["reference"]
        ).first()
        if booked is not None:
            return self._refund_already_booked(request, booked, page)
        facts = refund_facts(spend)
        if facts["remaining"] != plan["remaining"]:
            return self._refund_stale(request, plan, facts, page)
        error = ""
        if request.method == "POST":
            if facts["recent_refunds"] and request.POST.get("acknowledge") != "on":
                error = "Tick the box to confirm that you know about the recent refund."
            else:
                try:
                    result = services.refund(
                        spend_txn=spend,
                        amount=plan["amount"],
                        reason=plan["reason"],
                        actor=request.user,
                        reference_id=plan["reference"],
                        expected_remaining=plan["remaining"],
                    )
                except StaleConfirmation:
                    return self._refund_stale(request, plan, refund_facts(spend), page)
                except DomainError as refusal:
                    error = domain_error_message(refusal)
                else:
                    return self._refund_done(request, spend, result)
        return self._render_page(
            request,
            CONFIRM_TEMPLATE,
            token=token,
            error=error,
            summary=self._refund_summary(plan, facts),
            warnings=[
                f"This spend was already refunded in the last {facts['recent_minutes']} "
                f"minutes: {_refund_line(row)}."
                for row in facts["recent_refunds"]
            ],
            acknowledge_label=(
                "I have seen the recent refund above and want to refund this spend again."
                if facts["recent_refunds"]
                else ""
            ),
            confirm_label=f"Confirm: refund {points(plan['amount'])} points",
            **page,
        )

    def _refund_summary(self, plan: dict, facts: dict) -> list[tuple[str, str, str]]:
        spend, amount = facts["spend"], plan["amount"]
        what = "all that remains" if plan["mode"] == REFUND_ALL else "part of what remains"
        return [
            ("Customer", f"{spend.user} ({spend.user.email or 'no email'})", "confirm-user"),
            ("Spend", f"#{spend.pk}: {points(facts['spent'])} points, {spend.description}", ""),
            ("Refund", f"{signed_points(amount)} points ({what})", "confirm-amount"),
            (
                "Wallet balance",
                f"{points(facts['balance'])} → {points(facts['balance'] + amount)} points",
                "confirm-balance",
            ),
            (
                "Refundable remaining",
                f"{points(facts['remaining'])} → {points(facts['remaining'] - amount)} points",
                "confirm-remaining",
            ),
            ("Reason", plan["reason"], "confirm-reason"),
        ]

    def _refund_already_booked(
        self, request: HttpRequest, booked: Transaction, page: dict
    ) -> HttpResponse:
        return self._render_page(
            request,
            CONFIRM_TEMPLATE,
            booked=(
                f"This confirmation was already used: refund #{booked.pk} of "
                f"{signed_points(booked.amount)} points was booked at "
                f"{timezone.localtime(booked.created_at):%Y-%m-%d %H:%M:%S %Z}. "
                "Nothing more will happen. To refund again, start from the form."
            ),
            booked_url=_object_url(booked),
            **page,
        )

    def _refund_stale(
        self, request: HttpRequest, plan: dict, facts: dict, page: dict
    ) -> HttpResponse:
        lines = [_refund_line(row) for row in facts["recent_refunds"]]
        return self._render_page(
            request,
            CONFIRM_TEMPLATE,
            stale=(
                f"Since you filled in the form, what remains refundable of this spend changed "
                f"from {points(plan['remaining'])} to {points(facts['remaining'])} points. "
                "Nothing was booked. Start again to see the current figures."
            ),
            stale_details=lines,
            **page,
        )

    def _refund_done(
        self, request: HttpRequest, spend: Transaction, result: services.OperationResult
    ) -> HttpResponse:
        row = result.transaction
        if result.replayed:
            messages.info(
                request,
                f"This refund was already recorded (transaction #{row.pk}); nothing more "
                "was booked.",
            )
        else:
            text = (
                f"Refunded {points(row.amount)} points of spend #{spend.pk} to {spend.user} "
                f"(transaction #{row.pk}). New balance: {points(row.balance_after)} points."
            )
            self._log_action(request, row, text)
            messages.success(request, text)
        return HttpResponseRedirect(_object_url(spend))


# --- Adjust -----------------------------------------------------------------------------


class AdjustFlowMixin(ConfirmedFlowMixin):
    adjust_template = "admin/wallet/wallet/adjust_points.html"

    def adjust_urls(self) -> list:
        return [
            path(
                "<path:object_id>/adjust/confirm/",
                self.admin_site.admin_view(self.adjust_confirm_view),
                name="wallet_wallet_adjust_confirm",
            ),
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_points_view),
                name="wallet_wallet_adjust",
            ),
        ]

    def adjust_points_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Step one: a signed amount and a reason. Moves nothing; leads to the confirmation."""
        wallet = self._operation_object(request, object_id, ADJUST_PERMISSION)
        form = AdjustPointsForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            token = confirmations.issue(
                "adjust",
                object_id=wallet.pk,
                staff_id=request.user.pk,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                reference=confirmations.new_reference(),
                balance=wallet.balance,
            )
            return HttpResponseRedirect(_confirm_url(wallet, "adjust_confirm", token))
        return self._render_form(
            request,
            self.adjust_template,
            form,
            title=f"Adjust points: {wallet.user}",
            original=wallet,
            wallet=wallet,
            threshold=settings.WALLET_APPROVAL_THRESHOLD,
        )

    def adjust_confirm_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        wallet = self._operation_object(request, object_id, ADJUST_PERMISSION)
        page = {
            "title": f"Confirm the adjustment of {wallet.user}'s points",
            "original": wallet,
            "operation_name": "Adjust points",
            "start_over_url": _object_url(wallet, "adjust"),
            "cancel_url": _object_url(wallet),
        }
        token, plan = self._read_plan(request, "adjust", wallet)
        if plan is None:
            return self._render_page(request, CONFIRM_TEMPLATE, problem=token, **page)
        done = self._adjust_already_done(request, wallet, plan, page)
        if done is not None:
            return done
        if wallet.balance != plan["balance"]:
            return self._adjust_stale(request, wallet, plan, page)
        error = ""
        needs_approval = services.approval_required(plan["amount"])
        if request.method == "POST":
            try:
                result = services.adjust(
                    user=wallet.user_id,
                    amount=plan["amount"],
                    reason=plan["reason"],
                    actor=request.user,
                    reference_id=plan["reference"],
                    expected_balance=plan["balance"],
                )
            except StaleConfirmation:
                wallet.refresh_from_db()
                return self._adjust_stale(request, wallet, plan, page)
            except DomainError as refusal:
                error = domain_error_message(refusal)
            else:
                return self._adjust_done(request, wallet, result)
        balance, amount = wallet.balance, plan["amount"]
        summary = [
            ("Customer", f"{wallet.user} ({wallet.user.email or 'no email'})", "confirm-user"),
            ("Adjustment", f"{signed_points(amount)} points", "confirm-amount"),
            (
                "Wallet balance",
                f"{points(balance)} → {points(balance + amount)} points"
                + (" (once approved)" if needs_approval else ""),
                "confirm-balance",
            ),
            ("Reason", plan["reason"], "confirm-reason"),
        ]
        warnings = []
        if needs_approval:
            warnings.append(
                f"This amount needs a second person: adjustments of "
                f"{points(settings.WALLET_APPROVAL_THRESHOLD)} points or more are not booked "
                "when asked for. Confirming creates an approval request; another staff member "
                "with the approve permission books it (or rejects it) within "
                f"{settings.WALLET_APPROVAL_TTL_HOURS} hours."
            )
        if balance + amount < 0:
            warnings.append("This would take the balance below zero: it will be refused.")
        return self._render_page(
            request,
            CONFIRM_TEMPLATE,
            token=token,
            error=error,
            summary=summary,
            warnings=warnings,
            confirm_label=(
                f"Request approval of {signed_points(amount)} points"
                if needs_approval
                else f"Confirm: adjust by {signed_points(amount)} points"
            ),
            **page,
        )

    def _adjust_already_done(
        self, request: HttpRequest, wallet: Wallet, plan: dict, page: dict
    ) -> HttpResponse | None:
        reference = plan["reference"]
        approval = ApprovalRequest.objects.filter(wallet=wallet, reference_id=reference).first()
        if approval is not None:
            text = (
                f"This confirmation was already used: it created approval request "
                f"#{approval.pk} ({approval.effective_status}). Nothing more will happen."
            )
            return self._render_page(
                request, CONFIRM_TEMPLATE, booked=text, booked_url=_object_url(approval), **page
            )
        booked = Transaction.objects.filter(
            wallet=wallet, type=TransactionType.ADJUSTMENT, reference_id=reference
        ).first()
        if booked is None:
            return None
        text = (
            f"This confirmation was already used: adjustment #{booked.pk} of "
            f"{signed_points(booked.amount)} points was booked. Nothing more will happen."
        )
        return self._render_page(
            request, CONFIRM_TEMPLATE, booked=text, booked_url=_object_url(booked), **page
        )

    def _adjust_stale(
        self, request: HttpRequest, wallet: Wallet, plan: dict, page: dict
    ) -> HttpResponse:
        return self._render_page(
            request,
            CONFIRM_TEMPLATE,
            stale=(
                f"Since you filled in the form, the wallet balance changed from "
                f"{points(plan['balance'])} to {points(wallet.balance)} points. Nothing was "
                "booked. Start again to see the current figures."
            ),
            **page,
        )

    def _adjust_done(self, request: HttpRequest, wallet: Wallet, result: Any) -> HttpResponse:
        if isinstance(result, services.ApprovalResult):
            approval = result.approval
            text = (
                f"Approval request #{approval.pk} for {signed_points(approval.amount)} points "
                f"created: nothing is booked until another staff member approves it "
                f"(expires {timezone.localtime(approval.expires_at):%Y-%m-%d %H:%M:%S %Z})."
            )
            if not result.replayed:
                self._log_action(request, approval, text)
            messages.success(request, text)
            return HttpResponseRedirect(_object_url(approval))
        row = result.transaction
        text = (
            f"Adjusted the wallet of {wallet.user} by {signed_points(row.amount)} points "
            f"(transaction #{row.pk}). New balance: {points(row.balance_after)} points."
        )
        if result.replayed:
            text = f"This adjustment was already recorded. {text}"
        else:
            self._log_action(request, row, text)
        messages.success(request, text)
        return HttpResponseRedirect(_object_url(wallet))
