"""Human labels for audit action codes, for the back-office (codes stay the stored truth).

An action without a label here is shown as its code: a new kind of event is never hidden.
"""

from __future__ import annotations

ACTION_LABELS: dict[str, str] = {
    "wallet.deposit": "Deposit",
    "wallet.spend": "Spend",
    "wallet.refund": "Refund",
    "wallet.transfer_out": "Transfer sent",
    "wallet.transfer_in": "Transfer received",
    "wallet.adjustment": "Adjustment",
    "wallet.spend.rejected": "Spend refused (not enough points)",
    "wallet.transfer.rejected": "Transfer refused (not enough points)",
    "wallet.adjustment.rejected": "Adjustment refused (not enough points)",
    "wallet.pending_failed": "Stale pending row failed",
    "wallet.balance_repaired": "Balance repaired from the ledger",
    "suspicious.large_amount": "Large amount flagged",
    "suspicious.velocity": "Too many operations (velocity limit)",
    "approval.requested": "Approval requested (four eyes)",
    "approval.approved": "Approval granted and booked",
    "approval.rejected": "Approval rejected",
    "approval.expired": "Approval request expired",
    "approval.self_decision_refused": "Refused: decision on own request",
    "api.permission_denied": "API refused (missing permission)",
    "admin.permission_denied": "Back-office refused (missing permission)",
    "jobtype.price_changed": "Job type price changed",
    "auth.lockout": "Login locked out",
    "auth.token_issued": "API key issued",
    "auth.token_revoked": "API key revoked",
    "admin.export_csv": "List exported as CSV",
}


def action_label(code: str) -> str:
    return ACTION_LABELS.get(code, code)
