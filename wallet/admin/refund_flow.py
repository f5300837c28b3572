"""The admin's two-step refund of a spend (on the transaction page).

Step one is a form; it moves nothing and ends in a redirect to a confirmation page
(Post/Redirect/Get) carrying a signed token (wallet/admin/confirmations.py) that binds the
exact amount, the reason, a one-time reference and what remained refundable when the
staff member looked. Step two shows exactly what will happen — amount, new balance, what
remains refundable, warnings — and books it through `services.refund`, which re-checks
that figure under the wallet lock. What Back + resubmit can do:

* Back to the confirmation page after booking: it says the refund is already booked
  (found by its reference) and offers nothing to click; re-posting it replays.
* Back to the form and submit again: a *new* confirmation page, which shows the refund
  just made and requires ticking "I know it was refunded minutes ago" to go on.
* Any confirmation whose state moved on (another refund, a balance change) is refused
  with an explanation, and nothing is booked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone

from audit.backoffice.links import admin_url, object_view_paths
from divine_whispers.errors import DomainError, StaleConfirmation
from divine_whispers.points_format import points, signed_points
from jobs.models import Job
from wallet import permissions, services
from wallet.admin import confirmations
from wallet.admin.forms import REFUND_ALL, RefundForm, domain_error_message
from wallet.admin.staff_flow import CONFIRM_TEMPLATE, ConfirmedFlowMixin, confirm_url
from wallet.models import Transaction, TransactionStatus, TransactionType, Wallet


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
        return object_view_paths(
            self,
            ("refund/confirm/", "refund_confirm", self.refund_confirm_view),
            ("refund/", "refund", self.refund_view),
        )

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Step one: what to refund and why. Moves nothing; leads to the confirmation."""
        spend = self._operation_object(request, object_id, permissions.REFUND)
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
                    return HttpResponseRedirect(confirm_url(spend, "refund_confirm", token))
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
        spend = self._operation_object(request, object_id, permissions.REFUND)
        page = self._confirm_page(
            spend, f"Confirm the refund of spend #{spend.pk}", "Refund", admin_url(spend, "refund")
        )
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
        expiring = services.refund_expiring_share(spend, amount)
        lines = [
            ("Customer", f"{spend.user} ({spend.user.email or 'no email'})", "confirm-user"),
            ("Spend", f"#{spend.pk}: {points(facts['spent'])} points, {spend.description}", ""),
            ("Refund", f"{signed_points(amount)} points ({what})", "confirm-amount"),
            (
                "Wallet balance",
                f"{points(facts['balance'])} → "
                f"{points(facts['balance'] + amount - expiring)} points",
                "confirm-balance",
            ),
            (
                "Refundable remaining",
                f"{points(facts['remaining'])} → {points(facts['remaining'] - amount)} points",
                "confirm-remaining",
            ),
            ("Reason", plan["reason"], "confirm-reason"),
        ]
        if expiring:
            text = (
                f"{points(expiring)} of the {points(amount)} points go back to promotional "
                "points that have expired since the spend: they expire again at once."
            )
            lines.insert(3, ("Expires at once", text, "confirm-expiring"))
        return lines

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
            booked_url=admin_url(booked),
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
        return HttpResponseRedirect(admin_url(spend))
