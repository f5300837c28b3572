"""The error catalogue: every refusal the contract names, as one exception class each.

Each class carries its contract `code` and its HTTP `status`, so the status of an error
is written exactly once, next to the error, and the API's one exception handler
(divine_whispers/api/exceptions.py) only reads `exc.status`. The apps raise these; the
foundation defines them so that no app has to import another app to refuse something.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"
    # None: a subclass that forgot its status is a bug, answered as a 500, never guessed.
    status: int | None = None
    default_message = "The operation was refused."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 400
    default_message = "The request is invalid."


class AmountTooLarge(DomainError):
    code = "amount_too_large"
    status = 400
    default_message = "The amount is above the allowed maximum."


class SelfTransfer(DomainError):
    code = "self_transfer"
    status = 400
    default_message = "You cannot transfer points to yourself."


class UnknownRecipient(DomainError):
    code = "unknown_recipient"
    status = 400
    default_message = "The recipient does not exist."


class PriceMismatch(DomainError):
    code = "price_mismatch"
    status = 400
    default_message = "The amount does not match the job type's current price."


class NotRefundable(DomainError):
    code = "not_refundable"
    status = 400
    default_message = "Only spends can be refunded."


class RefundExceedsOriginal(DomainError):
    code = "refund_exceeds_original"
    status = 400
    default_message = "The refund is larger than what remains refundable of the spend."


class InactiveJobType(DomainError):
    code = "inactive_job_type"
    status = 400
    default_message = "This job type is not available."


class InsufficientBalance(DomainError):
    code = "insufficient_balance"
    status = 402
    default_message = "Not enough points."


class WalletInDebt(DomainError):
    code = "wallet_in_debt"
    status = 402
    default_message = (
        "Your wallet owes points clawed back after a refund or dispute; "
        "spends and transfers resume once new points have paid the debt."
    )


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status = 422
    default_message = "This reference was already used with different parameters."


class RequestInProgress(DomainError):
    code = "request_in_progress"
    status = 409
    default_message = "An identical request is being processed; retry shortly."


class VelocityLimitExceeded(DomainError):
    code = "velocity_limit_exceeded"
    status = 429
    default_message = "Too many spends and transfers in a short time; slow down."


class JobNotCancellable(DomainError):
    code = "job_not_cancellable"
    status = 409
    default_message = "Only a pending job can be cancelled."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = "Not found."


# --- Four-eyes approvals and staff confirmations ---------------------------------------


class SelfApprovalForbidden(DomainError):
    code = "self_approval_forbidden"
    status = 403
    default_message = "You requested this adjustment; another staff member must decide it."


class ApprovalNotPending(DomainError):
    code = "approval_not_pending"
    status = 409
    default_message = "This approval request is no longer pending."


class StaleConfirmation(DomainError):
    """The state a staff member confirmed in the admin is no longer the wallet's state
    (another refund or operation happened since). Raised only when the caller passes
    what it showed (`expected_remaining` / `expected_balance`); the API never does."""

    code = "stale_confirmation"
    status = 409
    default_message = "The figures you confirmed have changed since; nothing was booked."


# --- Minting controls -------------------------------------------------------------------


class PermissionRefused(DomainError):
    """A service's own refusal of an actor who may not do this at all (the API's
    permission classes answer the same code before a view runs)."""

    code = "permission_denied"
    status = 403
    default_message = "You do not have permission to perform this action."


class SelfDealingForbidden(DomainError):
    """Nobody moves points into their own wallet, nor decides anything about it; a staff
    member's wallet changes only through a request a superuser other than the requester
    approves."""

    code = "self_dealing_forbidden"
    status = 403
    default_message = "You may not move points into your own wallet or decide about it."


# --- Purchases (payment provider) ------------------------------------------------------


class InactivePackage(DomainError):
    code = "inactive_package"
    status = 400
    default_message = "This point package is not on sale."


class InvalidSignature(DomainError):
    code = "invalid_signature"
    status = 400
    default_message = "The webhook signature is missing, wrong or too old."


class ProviderUnavailable(DomainError):
    code = "provider_unavailable"
    status = 503
    default_message = (
        "The payment provider did not answer; nothing was charged or credited. "
        "Retry with the same reference."
    )
