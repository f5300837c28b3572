"""The only code that writes money. One function per operation, one DB transaction each.

Every operation follows the same shape:
  1. validate its input (nothing touched yet);
  2. lock every wallet it touches, in ascending wallet id order;
  3. replay an earlier call with the same reference, or refuse a reused one;
  4. check limits and balance (a refusal that matters is audited and committed alone);
  5. write its transaction rows, its audit events, and the new balances.
Either all of it commits or nothing does.

The operations live in one module each (deposits, grants, spending, transfers, refunds,
adjustments with their approvals, expiry, repairs, api_keys, and for bought points
purchases, clawbacks, provider_events, reconciliation) and return the types of `results`.
Private modules beside them hold what the operations share: `_checks` (replay, velocity,
balance and confirmation checks), `_minting` (who may create points: staff never deposit,
no self-dealing, the cumulative approval threshold), `_booking` (rows, audit events and
their writes), `_lots` (lots and allocations: what every credit and debit books into),
`_grants` (a grant's booking), `_debt` (clawed-back points owed, paid first from the next
credits), `_fast_path` (the two-statement spend and transfer in raw SQL, with `_sql`, how
its statements are written and sent), `_provider` (the payment provider's calls) and
`_observed` (the
metrics and log line of every operation). This package re-exports the public names
only, so callers keep writing `from wallet import services; services.spend(...)`.
"""

from wallet.services._minting import self_dealing_message
from wallet.services.adjustments import (
    ApprovalDecision,
    ApprovalResult,
    adjust,
    approval_cause_now,
    approval_required,
    approve_adjustment,
    reject_adjustment,
)
from wallet.services.api_keys import issue_token, may_issue_for, revoke_tokens, save_new_token
from wallet.services.clawbacks import (
    ClawbackResult,
    claw_back,
    refund_purchase,
    reverse_clawback,
)
from wallet.services.deposits import deposit
from wallet.services.expiry import ExpiryRun, expire_points
from wallet.services.grants import GrantResult, grant
from wallet.services.provider_events import (
    process_pending_events,
    receive_event,
)
from wallet.services.purchases import (
    FulfilResult,
    PaymentMismatch,
    PurchaseResult,
    fulfil_purchase,
    save_package,
    start_purchase,
)
from wallet.services.reconciliation import Reconciliation, reconcile_payments
from wallet.services.refunds import (
    refund,
    refund_expiring_share,
    refund_job,
    refundable_remaining,
)
from wallet.services.repairs import BalanceRepair, fail_stale_pending, repair_balance, stale_pending
from wallet.services.results import JobRefundResult, OperationResult, SpendResult, TransferResult
from wallet.services.spending import JOB_INPUT_MAX_BYTES, spend
from wallet.services.transfers import transfer

__all__ = [
    "JOB_INPUT_MAX_BYTES",
    "ApprovalDecision",
    "ApprovalResult",
    "BalanceRepair",
    "ClawbackResult",
    "ExpiryRun",
    "FulfilResult",
    "GrantResult",
    "JobRefundResult",
    "OperationResult",
    "PaymentMismatch",
    "PurchaseResult",
    "Reconciliation",
    "SpendResult",
    "TransferResult",
    "adjust",
    "approval_cause_now",
    "approval_required",
    "approve_adjustment",
    "claw_back",
    "deposit",
    "expire_points",
    "fail_stale_pending",
    "fulfil_purchase",
    "grant",
    "issue_token",
    "may_issue_for",
    "process_pending_events",
    "receive_event",
    "reconcile_payments",
    "refund",
    "refund_expiring_share",
    "refund_job",
    "refund_purchase",
    "refundable_remaining",
    "reject_adjustment",
    "repair_balance",
    "reverse_clawback",
    "revoke_tokens",
    "save_new_token",
    "save_package",
    "self_dealing_message",
    "spend",
    "stale_pending",
    "start_purchase",
    "transfer",
]
