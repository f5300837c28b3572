"""Code that runs in processes spawned by test_pgbouncer.py, connected through PgBouncer."""

from __future__ import annotations

from typing import Any


def init(db_name: str, port: int, pooling: bool) -> None:
    """Django on the parent's test database, reached through PgBouncer on `port`."""
    from wallet.management.simulation import configure_child_process

    configure_child_process(
        db_name, {"WALLET_VELOCITY_LIMIT": 10**9, "DATABASE_TRANSACTION_POOLING": pooling}
    )
    from django.conf import settings
    from django.db import connections

    from divine_whispers.db.config import POOLED_ENGINE, apply_transaction_pooling

    for database in (settings.DATABASES["default"], connections.settings["default"]):
        database.update(HOST="127.0.0.1", PORT=str(port), CONN_MAX_AGE=600)
        database["OPTIONS"] = dict(database.get("OPTIONS", {}))
        apply_transaction_pooling(database, pooling)
    del connections["default"]  # rebuilt from the settings above (engine included)
    assert connections["default"].settings_dict["PORT"] == str(port)
    assert (type(connections["default"]).__module__ == f"{POOLED_ENGINE}.base") is pooling


def spend_and_read(args: tuple[int, str, int]) -> dict[str, Any]:
    """`count` spends, each followed by two history reads through `.iterator()`: one
    in autocommit (where Django would hold a cursor past its transaction) and one inside
    `atomic()` (a server-side cursor within the transaction); returns how each ended
    (never raises)."""
    from collections import Counter

    from django.db import connections, transaction

    from divine_whispers.errors import DomainError
    from wallet import services
    from wallet.models import Transaction

    user_id, job_type, count = args
    outcomes: Counter = Counter()
    try:
        for _ in range(count):
            try:
                services.spend(user=user_id, job_type=job_type)
                history = Transaction.objects.filter(user_id=user_id)
                read = sum(1 for _ in history.iterator(chunk_size=2))
                with transaction.atomic():
                    read_in_transaction = sum(1 for _ in history.iterator(chunk_size=2))
                ok = read > 1 and read == read_in_transaction
                outcomes["spent" if ok else f"read {read}/{read_in_transaction}"] += 1
            except DomainError as exc:
                outcomes[exc.code] += 1
            except Exception as exc:
                outcomes[f"crash:{type(exc).__name__}:{str(exc).splitlines()[0][:60]}"] += 1
    finally:
        connections.close_all()
    return dict(outcomes)
