"""Bench-only switch: spend without the audit chain, to price the chain.

Applied inside a benchmark worker process only (never in the product): the spend then
builds no audit event (no HMAC, no event row, the wallet's chain head unchanged), and
everything else stays the same. The ledger this leaves is deliberately not auditable.
"""

from __future__ import annotations


def disable_spend_audit() -> None:
    from wallet.services import _booking

    def no_events(rows, actor, metadata=None):
        return []

    # Every operation calls the helper through its module: one patch covers them all.
    _booking.audit_events_for = no_events
