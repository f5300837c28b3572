"""Code that runs in processes spawned by test_pgbouncer.py, connected through PgBouncer."""

from __future__ import annotations

from typing import Any


def init(db_name: str, port: int, pooling: bool) -> None:
    """Django on the parent's test database, reached through PgBouncer on `port`."""
    from wallet.simulation import configure_child_process

    configure_child_process(
        db_name, {"WALLET_VELOCITY_LIMIT": 10**9, "DATABASE_TRANSACTION_POOLING": pooling}
    )
    from django.conf import settings
    from django.db import connections

    from divine_whispers.db_settings import apply_transaction_pooling

    for database in (settings.DATABASES["default"], connections["default"].settings_dict):
        database.update(HOST="127.0.0.1", PORT=str(port), CONN_MAX_AGE=600)
        database["OPTIONS"] = dict(database.get("OPTIONS", {}))
        apply_transaction_pooling(database, pooling)


def spend_and_read(args: tuple[int, str, int]) -> dict[str, Any]:
    """`count` spends, each followed by a history read through an `.iterator()` (a
    server-side cursor unless disabled); returns how each ended (never raises)."""
    from collections import Counter

    from django.db import connections

    from wallet import services
    from wallet.errors import DomainError
    from wallet.models import Transaction

    user_id, job_type, count = args
    outcomes: Counter = Counter()
    try:
        for _ in range(count):
            try:
                services.spend(user=user_id, job_type=job_type)
                rows = Transaction.objects.filter(user_id=user_id).iterator(chunk_size=2)
                outcomes["spent" if sum(1 for _ in rows) > 0 else "nothing_read"] += 1
            except DomainError as exc:
                outcomes[exc.code] += 1
            except Exception as exc:
                outcomes[f"crash:{type(exc).__name__}:{str(exc).splitlines()[0][:60]}"] += 1
    finally:
        connections.close_all()
    return dict(outcomes)
