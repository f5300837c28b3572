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
from wallet.services import _booking, _checks, _grants, _lots
from wallet.services._observed import observed
from wallet.services.results import OperationResult


def approval_required(amount: int) -> bool:
    """Whether an adjustment of `amount` needs a second staff member (0 = approvals off)."""
    threshold = settings.WALLET_APPROVAL_THRESHOLD
    return threshold > 0 and abs(amount) >= threshold


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

    An amount at or above `WALLET_APPROVAL_THRESHOLD` (in magnitude) is not booked: it
    becomes a pending `ApprovalRequest` (returned as an `ApprovalResult`) that another
    staff member approves or rejects. A reference names one request or one booking:
    repeating it replays whichever it named, with other parameters it is refused.
    `expected_balance`: the balance the admin's confirmation page showed (see refund).
    """
    amount = validate_signed_amount(amount, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)
    reason = validate_text(reason, field="reason", required=True, max_length=REASON_MAX_LENGTH)
    reference_id = validate_reference(reference_id)
    user_id = _checks.checked_user_id(user)
    fingerprint = _checks.fingerprint_of(op="adjust", amount=amount, reason=reason)
    needs_approval = approval_required(amount)
    if needs_approval and _actor_id(actor) is None:
        raise ValidationFailed(
            "An adjustment that needs approval must name the staff member asking for it.",
            field="actor",
        )

    def operation() -> OperationResult | ApprovalResult | Rejection:
        wallet = Wallet.objects.lock_for_user(user_id)
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
                wallet, -amount, action="wallet.adjustment", actor=actor
            )
        asked = _AskedAdjustment(amount, reason, reference_id, fingerprint)
        if needs_approval:
            return ApprovalResult(_open_approval(wallet, asked, actor=actor, now=now))
        row = _adjustment_row(wallet, asked, actor=actor, now=now)
        _booking.commit_rows([row], actor, now, {"reason": reason})
        _lots.book(wallet=wallet, transaction=row, now=now)
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


def _actor_id(actor: Any) -> int | None:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return actor.pk


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
    wallet: Wallet, asked: _AskedAdjustment, *, actor: Any, now: datetime
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
    )
    save_events([event])
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
    if approval.requested_by_id == _actor_id(actor):
        return _checks.reject(
            wallet,
            SelfApprovalForbidden(approval_id=approval.pk),
            action="approval.self_decision_refused",
            actor=actor,
            amount=approval.amount,
            approval_id=approval.pk,
            decision=decision,
        )
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
    if _actor_id(actor) is None:
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
