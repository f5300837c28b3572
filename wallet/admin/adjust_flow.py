"""The admin's two-step adjustment of a wallet's points (on the wallet page).

Step one is a form (a signed amount and a reason); it moves nothing and ends in a
redirect to a confirmation page carrying a signed token (wallet/admin/confirmations.py)
that binds the amount, the reason, a one-time reference and the balance the staff member
saw. Step two shows the new balance and warnings, and calls `services.adjust`, which
re-checks that balance under the wallet lock; an amount at or above the approval
threshold becomes a four-eyes approval request instead of a booking (approvals.py).
Back + resubmit replays (same reference) or is refused as stale, never books twice.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone

from audit.backoffice.links import admin_url, object_view_paths
from divine_whispers.errors import DomainError, StaleConfirmation
from divine_whispers.points_format import points, signed_points
from wallet import permissions, selectors, services
from wallet.admin import confirmations
from wallet.admin.forms import AdjustPointsForm, domain_error_message
from wallet.admin.staff_flow import CONFIRM_TEMPLATE, ConfirmedFlowMixin, confirm_url
from wallet.models import ApprovalRequest, Transaction, TransactionType, Wallet


class AdjustFlowMixin(ConfirmedFlowMixin):
    adjust_template = "admin/wallet/wallet/adjust_points.html"

    def adjust_urls(self) -> list:
        return object_view_paths(
            self,
            ("adjust/confirm/", "adjust_confirm", self.adjust_confirm_view),
            ("adjust/", "adjust", self.adjust_points_view),
        )

    def adjust_points_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Step one: a signed amount and a reason. Moves nothing; leads to the confirmation."""
        wallet = self._operation_object(request, object_id, permissions.ADJUST)
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
            return HttpResponseRedirect(confirm_url(wallet, "adjust_confirm", token))
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
        wallet = self._operation_object(request, object_id, permissions.ADJUST)
        page = self._confirm_page(
            wallet,
            f"Confirm the adjustment of {wallet.user}'s points",
            "Adjust points",
            admin_url(wallet, "adjust"),
        )
        token, plan = self._read_plan(request, "adjust", wallet)
        if plan is None:
            return self._render_page(request, CONFIRM_TEMPLATE, problem=token, **page)
        done = self._adjust_already_done(request, wallet, plan, page)
        if done is not None:
            return done
        if wallet.balance != plan["balance"]:
            return self._adjust_stale(request, wallet, plan, page)
        error = ""
        cause = services.approval_cause_now(
            wallet=wallet, amount=plan["amount"], actor=request.user
        )
        refused = wallet.balance + plan["amount"] < 0
        recent = [
            recent_line(item)
            for item in selectors.recent_identical_adjustments(
                wallet_id=wallet.pk,
                amount=plan["amount"],
                minutes=settings.ADMIN_RECENT_REFUND_MINUTES,
                now=timezone.now(),
            )
            if getattr(item, "reference_id", None) != plan["reference"]
        ]
        if request.method == "POST":
            if recent and request.POST.get("acknowledge") != "on":
                error = "Tick the box to confirm that you know about the recent adjustment."
            else:
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
        return self._render_page(
            request,
            CONFIRM_TEMPLATE,
            token=token,
            error=error,
            **adjust_confirmation(
                wallet, plan, cause, refused, recent, own_wallet=wallet.user_id == request.user.pk
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
                request, CONFIRM_TEMPLATE, booked=text, booked_url=admin_url(approval), **page
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
            request, CONFIRM_TEMPLATE, booked=text, booked_url=admin_url(booked), **page
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
            return HttpResponseRedirect(admin_url(approval))
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
        return HttpResponseRedirect(admin_url(wallet))


def adjust_confirmation(
    wallet: Wallet,
    plan: dict,
    cause: str | None,
    refused: bool,
    recent: list,
    *,
    own_wallet: bool = False,
) -> dict[str, Any]:
    """What the confirmation page shows. An adjustment that will be refused (the balance
    would go below zero) has no button and no "after" balance: only why, and the way
    back to the form. A recent identical adjustment must be acknowledged, as for refunds.
    `cause` is why a second person is needed (services.approval_cause_now), or None."""
    needs_approval = cause is not None
    balance, amount = wallet.balance, plan["amount"]
    if refused:
        after = f"{points(balance)} points now; {signed_points(amount)} would go below zero"
    else:
        after = f"{points(balance)} → {points(balance + amount)} points" + (
            " (once approved)" if needs_approval else ""
        )
    summary = [
        ("Customer", f"{wallet.user} ({wallet.user.email or 'no email'})", "confirm-user"),
        ("Adjustment", f"{signed_points(amount)} points", "confirm-amount"),
        ("Wallet balance", after, "confirm-balance"),
        ("Reason", plan["reason"], "confirm-reason"),
    ]
    if refused:
        return {
            "summary": summary,
            "summary_title": "What you asked for",
            "refusal": (
                f"This adjustment cannot be booked: the wallet holds {points(balance)} points, "
                f"and {signed_points(amount)} would take the balance below zero. Nothing "
                "will be booked; change the amount."
            ),
            "hide_confirm": True,
        }
    warnings = []
    if own_wallet:
        warnings.append(
            "This is your own wallet: nobody adjusts their own points, so confirming "
            "will be refused (self_dealing_forbidden)."
        )
    elif needs_approval:
        warnings.append(approval_warning(cause))
    if recent:
        warnings.append(
            f"The same adjustment ({signed_points(amount)} points) was already made or "
            f"asked for on this wallet in the last {settings.ADMIN_RECENT_REFUND_MINUTES} "
            "minutes: " + "; ".join(recent) + "."
        )
    return {
        "summary": summary,
        "warnings": warnings,
        "acknowledge_label": (
            "I have seen the recent adjustment above and want to make this one too."
            if recent
            else ""
        ),
        "confirm_label": (
            f"Request approval of {signed_points(amount)} points"
            if needs_approval
            else f"Confirm: adjust by {signed_points(amount)} points"
        ),
    }


def recent_line(item: Transaction | ApprovalRequest) -> str:
    when = f"{timezone.localtime(item.created_at):%Y-%m-%d %H:%M:%S %Z}"
    if isinstance(item, ApprovalRequest):
        return (
            f"approval request #{item.pk} ({item.effective_status}) asked by "
            f"{item.requested_by.get_username()} at {when}"
        )
    who = item.actor.get_username() if item.actor_id else "the system"
    return f"adjustment #{item.pk} booked by {who} at {when}"


def approval_warning(cause: str, *, noun: str = "adjustments") -> str:
    """Why a credit waits for a second person (the causes of services.adjust, which
    services.grant shares): the adjust and grant confirmations say the same."""
    threshold = points(settings.WALLET_APPROVAL_THRESHOLD)
    why = {
        "amount": f"{noun} of {threshold} points or more are not booked when asked for.",
        "staff_wallet": "this wallet belongs to a staff member; only a superuser other than "
        "you may approve a change to it.",
        "cumulative": f"with what you, or this wallet, received without a second person in "
        f"the last {settings.WALLET_APPROVAL_WINDOW_HOURS} hours it reaches {threshold} points.",
    }[cause]
    return (
        f"This amount needs a second person: {why} Confirming creates an approval request; another "
        "staff member with the approve permission books it (or rejects it) within "
        f"{settings.WALLET_APPROVAL_TTL_HOURS} hours."
    )
