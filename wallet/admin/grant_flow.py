"""The admin's two-step grant of promotional points (on the wallet page).

Step one is a form (amount, reason, campaign, optional expiry); it moves nothing and
ends in a redirect to a confirmation page carrying a signed token
(wallet/admin/confirmations.py) that binds the terms and a one-time reference. Step two
shows what will be booked and calls `services.grant`; an amount at or above the approval
threshold becomes a four-eyes approval request instead (approvals.py). Back + resubmit
replays the same reference, never books twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone

from audit.backoffice.links import admin_url, object_view_paths
from divine_whispers.errors import DomainError
from divine_whispers.points_format import points
from wallet import permissions, services
from wallet.admin import confirmations
from wallet.admin.adjust_flow import approval_warning
from wallet.admin.forms import GrantPointsForm, domain_error_message
from wallet.admin.staff_flow import CONFIRM_TEMPLATE, ConfirmedFlowMixin, confirm_url
from wallet.models import Wallet


def _expiry_text(expires_at: datetime | None) -> str:
    if expires_at is None:
        return "never"
    return f"{timezone.localtime(expires_at):%Y-%m-%d %H:%M %Z}"


class GrantFlowMixin(ConfirmedFlowMixin):
    grant_template = "admin/wallet/wallet/grant_points.html"

    def grant_urls(self) -> list:
        return object_view_paths(
            self,
            ("grant/confirm/", "grant_confirm", self.grant_confirm_view),
            ("grant/", "grant", self.grant_points_view),
        )

    def grant_points_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Step one: the grant's terms. Moves nothing; leads to the confirmation."""
        wallet = self._operation_object(request, object_id, permissions.GRANT)
        form = GrantPointsForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            expires_at = form.cleaned_data["expires_at"]
            token = confirmations.issue(
                "grant",
                object_id=wallet.pk,
                staff_id=request.user.pk,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                campaign=form.cleaned_data["campaign"],
                expires_at=expires_at.isoformat() if expires_at else None,
                reference=confirmations.new_reference(),
            )
            return HttpResponseRedirect(confirm_url(wallet, "grant_confirm", token))
        return self._render_form(
            request,
            self.grant_template,
            form,
            title=f"Grant promotional points: {wallet.user}",
            original=wallet,
            wallet=wallet,
            threshold=settings.WALLET_APPROVAL_THRESHOLD,
        )

    def grant_confirm_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        wallet = self._operation_object(request, object_id, permissions.GRANT)
        page = self._confirm_page(
            wallet,
            f"Confirm the grant to {wallet.user}",
            "Grant points",
            admin_url(wallet, "grant"),
        )
        token, plan = self._read_plan(request, "grant", wallet)
        if plan is None:
            return self._render_page(request, CONFIRM_TEMPLATE, problem=token, **page)
        expires_at = datetime.fromisoformat(plan["expires_at"]) if plan["expires_at"] else None
        error = ""
        # The same rule as the service (amount, staff wallet, cumulative), read without
        # locks for the preview; services.grant decides again under them.
        cause = services.approval_cause_now(
            wallet=wallet, amount=plan["amount"], actor=request.user
        )
        needs_approval = cause is not None
        if request.method == "POST":
            try:
                result = services.grant(
                    user=wallet.user_id,
                    amount=plan["amount"],
                    reason=plan["reason"],
                    campaign=plan["campaign"],
                    expires_at=expires_at,
                    actor=request.user,
                    reference_id=plan["reference"],
                )
            except DomainError as refusal:
                error = domain_error_message(refusal)
            else:
                return self._grant_done(request, wallet, result)
        summary = [
            ("Customer", f"{wallet.user} ({wallet.user.email or 'no email'})", "confirm-user"),
            ("Grant", f"{points(plan['amount'])} promotional points", "confirm-amount"),
            ("Expires", _expiry_text(expires_at), "confirm-expiry"),
            ("Campaign", plan["campaign"] or "—", "confirm-campaign"),
            ("Reason", plan["reason"], "confirm-reason"),
        ]
        warnings = []
        if wallet.user_id == request.user.pk:
            warnings.append(
                "This is your own wallet: nobody grants points to themselves, so confirming "
                "will be refused (self_dealing_forbidden)."
            )
        elif needs_approval:
            warnings.append(approval_warning(cause, noun="grants"))
        return self._render_page(
            request,
            CONFIRM_TEMPLATE,
            token=token,
            error=error,
            summary=summary,
            warnings=warnings,
            confirm_label=(
                f"Request approval of a grant of {points(plan['amount'])} points"
                if needs_approval
                else f"Confirm: grant {points(plan['amount'])} points"
            ),
            **page,
        )

    def _grant_done(self, request: HttpRequest, wallet: Wallet, result: Any) -> HttpResponse:
        if isinstance(result, services.ApprovalResult):
            approval = result.approval
            text = (
                f"Approval request #{approval.pk} for a grant of {points(approval.amount)} "
                "points created: nothing is booked until another staff member approves it."
            )
            if not result.replayed:
                self._log_action(request, approval, text)
            messages.success(request, text)
            return HttpResponseRedirect(admin_url(approval))
        row = result.transaction
        text = (
            f"Granted {points(row.amount)} promotional points to {wallet.user} (transaction "
            f"#{row.pk}, lot #{result.lot.pk}, expires {_expiry_text(result.lot.expires_at)})."
        )
        if result.replayed:
            text = f"This grant was already recorded. {text}"
        else:
            self._log_action(request, row, text)
        messages.success(request, text)
        return HttpResponseRedirect(admin_url(wallet))
