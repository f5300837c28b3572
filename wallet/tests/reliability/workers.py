"""Code that runs in child processes spawned by the reliability tests.

Separate Python processes, each with its own PostgreSQL connection to the parent
test's database (`configure_child_process` points them at it).
"""

from __future__ import annotations

from collections import Counter

from wallet.management.simulation import configure_child_process


def init(db_name: str) -> None:
    # Velocity is tested elsewhere; here it would only hide the race under test.
    configure_child_process(db_name, {"WALLET_VELOCITY_LIMIT": 10**9})


def spend_many(args: tuple[int, str, int]) -> dict[str, int]:
    """`count` spends on one wallet; returns how each ended (never raises)."""
    from django.db import connections

    from divine_whispers.errors import DomainError
    from wallet import services

    user_id, job_type, count = args
    outcomes: Counter = Counter()
    try:
        for _ in range(count):
            try:
                services.spend(user=user_id, job_type=job_type)
                outcomes["spent"] += 1
            except DomainError as exc:
                outcomes[exc.code] += 1
            except Exception as exc:
                outcomes[f"crash:{type(exc).__name__}"] += 1
    finally:
        connections.close_all()
    return dict(outcomes)
