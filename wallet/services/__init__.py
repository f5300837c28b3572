"""The only code that writes money. One function per operation, one DB transaction each.

Every operation follows the same shape:
  1. validate its input (nothing touched yet);
  2. lock every wallet it touches, in ascending wallet id order;
  3. replay an earlier call with the same reference, or refuse a reused one;
  4. check limits and balance (a refusal that matters is audited and committed alone);
  5. write its transaction rows, its audit events, and the new balances.
Either all of it commits or nothing does.

The operations live in one module each (deposits, spending, transfers, refunds,
adjustments with their approvals, repairs; shared helpers in _common); this package
re-exports them, so callers keep writing `from wallet import services; services.spend(...)`.
"""

from wallet.services._common import (  # noqa: F401
    JOB_INPUT_MAX_BYTES,
    JobRefundResult,
    OperationResult,
    SpendResult,
    TransferResult,
    User,
    _audit_events_for,
    _book,
    _check_expected,
    _commit_rows,
    _find_replay,
    _fingerprint,
    _insufficient_rejection,
    _persist_wallets,
    _reject,
    _user_id,
    _velocity_rejection,
)
from wallet.services.adjustments import (  # noqa: F401
    ApprovalDecision,
    ApprovalResult,
    _actor_id,
    _adjustment_row,
    _approval_event,
    _approval_id,
    _AskedAdjustment,
    _decide,
    _decision_refusal,
    _find_approval_replay,
    _lock_approval,
    _not_pending,
    _open_approval,
    _record_decision,
    adjust,
    approval_required,
    approve_adjustment,
    reject_adjustment,
)
from wallet.services.deposits import (  # noqa: F401
    deposit,
)
from wallet.services.refunds import (  # noqa: F401
    _book_refund,
    _mark_job_after_refund,
    _spend_id,
    _validated_refund_amount,
    refund,
    refund_job,
    refundable_remaining,
)
from wallet.services.repairs import (  # noqa: F401
    BalanceRepair,
    _fail_stale_pending_of_wallet,
    fail_stale_pending,
    ledger_balance,
    repair_balance,
    stale_pending,
)
from wallet.services.spending import (  # noqa: F401
    _checked_job_type,
    _job_type_code,
    _spend_fast,
    _spend_row,
    _validate_job_input,
    spend,
)
from wallet.services.transfers import (  # noqa: F401
    _recipient_id,
    _transfer_fast,
    _transfer_rows,
    _without_jobs,
    transfer,
)
