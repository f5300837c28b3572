"""Adjustments by finance staff, and their four-eyes approvals (the only writer of
ApprovalRequest rows).

Part of the wallet.services package (see its __init__): the only code that writes money.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import build_wallet_event, save_events
from divine_whispers.db.faults import row_locks_disabled
from divine_whispers.db.transactions import Rejection, run_atomically
from divine_whispers.errors import (
    ApprovalNotPending,
    IdempotencyKeyReused,
    InsufficientBalance,
    NotFound,
    SelfApprovalForbidden,
    ValidationFailed,
)
from divine_whispers.money import (
    REASON_MAX_LENGTH,
    validate_reference,
    validate_signed_amount,
    validate_text,
)
from wallet.models import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    Transaction,
    TransactionType,
    Wallet,
)
from wallet.services import _booking, _checks, _debt, _grants, _lots, _minting
from wallet.services._observed import observed
from wallet.services.results import OperationResult


def approval_required(amount: int) -> bool:
    """Whether an adjustment of `amount` needs a second staff member on its own, whatever
    was booked before (0 = approvals off); see `_approval_cause` for the whole rule."""
    threshold = settings.WALLET_APPROVAL_THRESHOLD
    return threshold > 0 and abs(amount) >= threshold


def _approval_cause(wallet: Wallet, amount: int, actor: Any, now: datetime) -> str | None:
    """Why this adjustment needs a second person, or None: it is large (`amount`), a staff
    member's wallet (`staff_wallet`: always, and a superuser decides), or it takes what its
    requester or its wallet received alone in the window to the threshold (`cumulative`).
    Both wallets must be locked (the caller's one ascending statement)."""
    if approval_required(amount):
        return "amount"
    if _minting.owner_is_staff(wallet):
        return "staff_wallet"
    alone = _minting.booked_alone(
        requester_id=_minting.actor_id(actor), wallet_id=wallet.pk, now=now
    )
    return "cumulative" if alone.would_reach(amount) else None


def approval_cause_now(*, wallet: Wallet, amount: int, actor: Any) -> str | None:
    """What `adjust` would decide now, read without locks (a confirmation page's preview;
    the service decides again under the locks)."""
    return _approval_cause(wallet, amount, actor, timezone.now())


@observed("adjust")
def adjust(
    *,
    user: Any,
    amount: Any,
    reason: Any,
    actor: AbstractBaseUser | None,
    reference_id: Any = None,
    expected_balance: int | None = None,
) -> OperationResult | ApprovalResult:
    """A signed correction by finance staff, with a written reason.

    Not booked but opened as a pending `ApprovalRequest` (returned as an `ApprovalResult`)
    that another staff member approves or rejects: an amount at or above
    `WALLET_APPROVAL_THRESHOLD` in magnitude, any change to a staff member's wallet, and
    a credit that would take what its requester or its wallet got alone within
    `WALLET_APPROVAL_WINDOW_HOURS` to the threshold (see `_minting`). Nobody adjusts
    their own wallet (`self_dealing_forbidden`, audited). A reference names one request
    or one booking: repeating it replays whichever it named, with other parameters it is
    refused. `expected_balance`: the balance the admin's confirmation page showed.
    """
    amount = validate_signed_amount(amount, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)
    reason = validate_text(reason, field="reason", required=True, max_length=REASON_MAX_LENGTH)
    reference_id = validate_reference(reference_id)
    user_id = _checks.checked_user_id(user)
    fingerprint = _checks.fingerprint_of(op="adjust", amount=amount, reason=reason)
    requester_id = _minting.actor_id(actor)

    def operation() -> OperationResult | ApprovalResult | Rejection:
        # The requester's own wallet is locked too (same ascending statement): it
        # serialises their cumulative sum across wallets and processes.
        wallets = Wallet.objects.lock_for_users({user_id, requester_id} - {None})
        wallet = wallets[user_id]
        if requester_id == user_id:
            return _minting.refuse_self_dealing(
                wallet, actor, action="wallet.adjustment", amount=amount, why="own_wallet"
            )
        requested = _find_approval_replay(wallet, reference_id, fingerprint)
        if requested is not None:
            return ApprovalResult(requested, replayed=True)
        earlier = _checks.find_replay(wallet, TransactionType.ADJUSTMENT, reference_id, fingerprint)
        if earlier is not None:
            return OperationResult(earlier, replayed=True)
        # The balance the staff member confirmed is the one before any due expiry: an
        # expiry booked now is not a change they could have seen.
        _checks.check_expected("wallet balance", expected_balance, lambda: wallet.balance)
        now = timezone.now()
        _lots.expire_due(wallet=wallet, now=now)
        if wallet.balance + amount < 0:
            # Also for a request: one that could never be booked now is refused at once.
            return _checks.insufficient_rejection(
                wallet, -amount, action="wallet.adjustment", actor=actor, adjustment_reason=reason
            )
        asked = _AskedAdjustment(amount, reason, reference_id, fingerprint)
        cause = _approval_cause(wallet, amount, actor, now)
        if cause is not None:
            if requester_id is None:
                raise ValidationFailed(
                    "An adjustment that needs approval must name the staff member asking for it.",
                    field="actor",
                )
            return ApprovalResult(_open_approval(wallet, asked, actor=actor, now=now, cause=cause))
        row = _adjustment_row(wallet, asked, actor=actor, now=now)
        _booking.commit_rows([row], actor, now, {"reason": reason})
        _lots.book(wallet=wallet, transaction=row, now=now)
        _debt.settle(wallet=wallet, credit=row, actor=actor, now=now)
        return OperationResult(row)

    return run_atomically(operation)


@dataclass(frozen=True)
class _AskedAdjustment:
    """What was asked for: booked at once, or kept on an approval request until decided."""

    amount: int
    reason: str
    reference_id: str | None
    fingerprint: str
    # A grant's request (wallet/services/grants.py) carries the grant's own terms.
    kind: str = ApprovalKind.ADJUSTMENT
    grant_expires_at: datetime | None = None
    campaign: str = ""


def _adjustment_row(
    wallet: Wallet, asked: _AskedAdjustment, *, actor: Any, now: datetime
) -> Transaction:
    booking = _booking.Booking(now, actor, asked.reference_id, asked.fingerprint)
    return booking.row(wallet, TransactionType.ADJUSTMENT, asked.amount, description=asked.reason)


@dataclass
class ApprovalResult:
    approval: ApprovalRequest
    replayed: bool = False


@dataclass
class ApprovalDecision:
    approval: ApprovalRequest
    transaction: Transaction | None = None


def _find_approval_replay(
    wallet: Wallet, reference_id: str | None, fingerprint: str
) -> ApprovalRequest | None:
    """The request opened earlier with this reference, if any (wallet must be locked)."""
    if reference_id is None:
        return None
    earlier = ApprovalRequest.objects.filter(wallet=wallet, reference_id=reference_id).first()
    if earlier is not None and earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(reference_id=reference_id)
    return earlier


def _approval_event(
    wallet: Wallet,
    approval: ApprovalRequest,
    action: str,
    actor: Any,
    *,
    transaction_id: int | None = None,
    **metadata: Any,
) -> AuditEvent:
    """An event about `approval` on its wallet's chain (moves the in-memory head)."""
    return build_wallet_event(
        wallet=wallet,
        action=action,
        actor=actor,
        transaction_id=transaction_id,
        amount=approval.amount,
        balance_before=wallet.balance - (approval.amount if transaction_id else 0),
        balance_after=wallet.balance,
        metadata={
            "approval_id": approval.pk,
            "requested_by": approval.requested_by_id,
            "reason": approval.reason,
            **metadata,
        },
    )


def _open_approval(
    wallet: Wallet, asked: _AskedAdjustment, *, actor: Any, now: datetime, cause: str
) -> ApprovalRequest:
    approval = ApprovalRequest.objects.create(
        wallet=wallet,
        user_id=wallet.user_id,
        kind=asked.kind,
        grant_expires_at=asked.grant_expires_at,
        campaign=asked.campaign,
        amount=asked.amount,
        reason=asked.reason,
        reference_id=asked.reference_id,
        request_fingerprint=asked.fingerprint,
        requested_by_id=actor.pk,
        expires_at=now + timedelta(hours=settings.WALLET_APPROVAL_TTL_HOURS),
        created_at=now,
    )
    event = _approval_event(
        wallet,
        approval,
        "approval.requested",
        actor,
        reference_id=asked.reference_id,
        expires_at=approval.expires_at.isoformat(),
        threshold=settings.WALLET_APPROVAL_THRESHOLD,
        cause=cause,
    )
    events = [event]
    if cause == "cumulative":
        # One person's many small credits reached the threshold together: flagged.
        flag = {
            "threshold": settings.WALLET_APPROVAL_THRESHOLD,
            "window_hours": settings.WALLET_APPROVAL_WINDOW_HOURS,
        }
        events.append(
            _approval_event(wallet, approval, "suspicious.cumulative_amount", actor, **flag)
        )
    save_events(events)
    _booking.persist_wallets([wallet], now)
    return approval


def _lock_approval(approval_id: int) -> tuple[Wallet, ApprovalRequest]:
    """Lock the request's wallet, then the request (the order every decision uses)."""
    user_id = (
        ApprovalRequest.objects.filter(pk=approval_id).values_list("user_id", flat=True).first()
    )
    if user_id is None:
        raise NotFound(f"Approval request {approval_id} does not exist.", approval_id=approval_id)
    wallet = Wallet.objects.lock_for_user(user_id)
    requests = ApprovalRequest.objects.select_related("requested_by")
    if not row_locks_disabled():  # test-only switch (divine_whispers/db/faults.py), as for wallets
        requests = requests.select_for_update(of=("self",))
    return wallet, requests.get(pk=approval_id)


def _decision_refusal(
    wallet: Wallet, approval: ApprovalRequest, actor: Any, decision: str, now: datetime
) -> Rejection | None:
    """Why `actor` may not decide `approval` now, audited; None when they may.

    The requester never decides (checked first: it holds whatever the status). A
    request found past its expiry is marked `expired` and audited, once.
    """
    if approval.requested_by_id == _minting.actor_id(actor):
        return _checks.reject(
            wallet,
            SelfApprovalForbidden(approval_id=approval.pk),
            action="approval.self_decision_refused",
            actor=actor,
            amount=approval.amount,
            approval_id=approval.pk,
            decision=decision,
        )
    dealing = _self_dealing_decision(wallet, approval, actor, decision)
    if dealing is not None:
        return dealing
    if approval.status == ApprovalStatus.PENDING and approval.is_expired(now):
        approval.status = ApprovalStatus.EXPIRED
        approval.decided_at = now
        approval.save(update_fields=["status", "decided_at", "updated_at"])
        save_events([_approval_event(wallet, approval, "approval.expired", actor)])
        _booking.persist_wallets([wallet], now)
        return Rejection(_not_pending(approval))
    if approval.status != ApprovalStatus.PENDING:
        raise _not_pending(approval)
    return None


def _self_dealing_decision(
    wallet: Wallet, approval: ApprovalRequest, actor: Any, decision: str
) -> Rejection | None:
    """Nobody decides a request about their own wallet; a staff member's wallet needs a
    superuser (other than the requester, checked before) to decide (audited refusals)."""
    why = _minting.decision_barrier(_minting.wallet_owner(wallet), actor)
    if why is None:
        return None
    return _minting.refuse_self_dealing(
        wallet,
        actor,
        action=f"approval.{decision}",
        amount=approval.amount,
        why=why,
        approval_id=approval.pk,
    )


def _not_pending(approval: ApprovalRequest) -> ApprovalNotPending:
    return ApprovalNotPending(
        f"Approval request {approval.pk} is {approval.status}, not pending.",
        approval_id=approval.pk,
        status=str(approval.status),
    )


def _decide(
    approval: Any,
    actor: Any,
    decision: str,
    act: Callable[[Wallet, ApprovalRequest, datetime], ApprovalDecision | Rejection],
) -> ApprovalDecision:
    """The frame of a decision: lock wallet then request, refuse (audited) what may not be
    decided by `actor` now, else `act` — all in one DB transaction."""
    approval_id = _checks.id_of(
        approval, ApprovalRequest, "approval must be an approval request id.", field="approval"
    )
    if _minting.actor_id(actor) is None:
        raise ValidationFailed("A decision must name the staff member deciding.", field="actor")

    def operation() -> ApprovalDecision | Rejection:
        wallet, request = _lock_approval(approval_id)
        now = timezone.now()
        refusal = _decision_refusal(wallet, request, actor, decision, now)
        return refusal if refusal is not None else act(wallet, request, now)

    return run_atomically(operation)


def _record_decision(
    request: ApprovalRequest, status: str, actor: Any, now: datetime, **fields: Any
) -> None:
    request.status = status
    request.decided_by = actor
    request.decided_at = now
    for name, value in fields.items():
        setattr(request, name, value)
    request.save(update_fields=["status", "decided_by", "decided_at", *fields, "updated_at"])


@observed("adjust")  # the approved adjustment is booked here: counted and logged as one
def approve_adjustment(*, approval: Any, actor: AbstractBaseUser) -> ApprovalDecision:
    """A second staff member approves: the adjustment is booked now, exactly once.

    Under the usual rules: a balance that would go negative is refused (402) and the
    request stays pending. The booking, the request's new status and both audit events
    commit together or not at all.
    """

    def book(wallet: Wallet, request: ApprovalRequest, now: datetime):
        _lots.expire_due(wallet=wallet, now=now)
        if wallet.balance + request.amount < 0:
            return _checks.reject(
                wallet,
                InsufficientBalance(balance=wallet.balance, required=-request.amount),
                action="wallet.adjustment.rejected",
                actor=actor,
                amount=request.amount,
                reason="insufficient_balance",
                approval_id=request.pk,
            )
        asked = _AskedAdjustment(
            request.amount,
            request.reason,
            request.reference_id,
            request.request_fingerprint,
            kind=request.kind,
            grant_expires_at=request.grant_expires_at,
            campaign=request.campaign,
        )

        def approved_event(row: Transaction) -> list[AuditEvent]:
            return [
                _approval_event(wallet, request, "approval.approved", actor, transaction_id=row.pk)
            ]

        metadata = {"approval_id": request.pk}
        if request.kind == ApprovalKind.GRANT:
            _grants.refuse_lapsed(asked, now)
            row, _ = _grants.book_grant(
                wallet, asked, actor=actor, now=now, metadata=metadata, more_events=approved_event
            )
        else:
            row = _adjustment_row(wallet, asked, actor=actor, now=now)
            _booking.commit_rows(
                [row],
                actor,
                now,
                {"reason": request.reason, **metadata},
                more_events=lambda: approved_event(row),
            )
            _lots.book(wallet=wallet, transaction=row, now=now)
        _debt.settle(wallet=wallet, credit=row, actor=actor, now=now)
        _record_decision(request, ApprovalStatus.APPROVED, actor, now, transaction=row)
        return ApprovalDecision(request, row)

    return _decide(approval, actor, "approve", book)


def reject_adjustment(*, approval: Any, actor: AbstractBaseUser, reason: Any) -> ApprovalDecision:
    """A second staff member rejects, with a written reason; nothing is booked."""
    reason = validate_text(reason, field="reason", required=True, max_length=REASON_MAX_LENGTH)

    def refuse(wallet: Wallet, request: ApprovalRequest, now: datetime):
        _record_decision(request, ApprovalStatus.REJECTED, actor, now, decision_reason=reason)
        event = _approval_event(wallet, request, "approval.rejected", actor, decision_reason=reason)
        save_events([event])
        _booking.persist_wallets([wallet], now)
        return ApprovalDecision(request)

    return _decide(approval, actor, "reject", refuse)
