"""Bench-only switch: spend without the audit chain, to price the chain.

Applied inside a benchmark worker process only (never in the product): the spend then
builds no audit event (no HMAC, no event row, the wallet's chain head unchanged), and
everything else stays the same. The ledger this leaves is deliberately not auditable.
"""

from __future__ import annotations


def disable_spend_audit() -> None:
    from wallet import services

    services._audit_events_for = lambda rows, actor, metadata=None: []
