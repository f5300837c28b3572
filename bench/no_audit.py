"""Bench-only switch: spend without the audit chain, to price the chain.

Applied inside a benchmark worker process only (never in the product): the spend then
builds no audit event (no HMAC, no event row, the wallet's chain head unchanged), and
everything else stays the same. The ledger this leaves is deliberately not auditable.
"""

from __future__ import annotations


def disable_spend_audit() -> None:
    import pkgutil
    from importlib import import_module

    from wallet import services

    def no_events(rows, actor, metadata=None):
        return []

    # Each module of the package imported the helper by name: patch it in every one.
    for module in [
        services,
        *(
            import_module(f"wallet.services.{m.name}")
            for m in pkgutil.iter_modules(services.__path__)
        ),
    ]:
        if hasattr(module, "_audit_events_for"):
            module._audit_events_for = no_events
