"""The only code that writes money. One function per operation, one DB transaction each.

Every operation follows the same shape:
  1. validate its input (nothing touched yet);
  2. lock every wallet it touches, in ascending wallet id order;
  3. replay an earlier call with the same reference, or refuse a reused one;
  4. check limits and balance (a refusal that matters is audited and committed alone);
  5. write its transaction rows, its audit events, and the new balances.
Either all of it commits or nothing does.

The operations live in one module each (deposits, grants, spending, transfers, refunds,
adjustments with their approvals, expiry, repairs, api_keys) and return the types of `results`.
Private modules beside them hold what the operations share: `_checks` (replay, velocity,
balance and confirmation checks), `_booking` (rows, audit events and their writes),
`_lots` (lots and allocations: the stable API the other credits and debits build on),
`_grants` (a grant's booking), `_fast_path` (the two-statement spend and transfer in raw
SQL, with `_sql`, how its statements are written and sent) and `_observed` (the
metrics and log line of every operation). This package re-exports the public names
only, so callers keep writing `from wallet import services; services.spend(...)`.
"""

from wallet.services.adjustments import (
    ApprovalDecision,
    ApprovalResult,
    adjust,
    approval_required,
    approve_adjustment,
    reject_adjustment,
)
from wallet.services.api_keys import issue_token, may_issue_for, revoke_tokens, save_new_token
from wallet.services.deposits import deposit
from wallet.services.expiry import ExpiryRun, expire_points
from wallet.services.grants import GrantResult, grant
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
    "ExpiryRun",
    "GrantResult",
    "JobRefundResult",
    "OperationResult",
    "SpendResult",
    "TransferResult",
    "adjust",
    "approval_required",
    "approve_adjustment",
    "deposit",
    "expire_points",
    "fail_stale_pending",
    "grant",
    "issue_token",
    "may_issue_for",
    "refund",
    "refund_expiring_share",
    "refund_job",
    "refundable_remaining",
    "reject_adjustment",
    "repair_balance",
    "revoke_tokens",
    "save_new_token",
    "spend",
    "stale_pending",
    "transfer",
]
