"""Child process of the crash-injection tests: runs one money operation and prints its
result. Started with `DW_TEST_CRASH_POINT=<point>` it stops at that point inside the
operation, says so on stdout, and waits to be killed (divine_whispers/faults.py).

Usage: python -m wallet.tests.reliability.crash_child <test database name> <operation JSON>
"""

from __future__ import annotations

import json
import sys

from wallet.management.simulation import configure_child_process


def run(spec: dict) -> dict:
    from django.contrib.auth import get_user_model

    from wallet import services

    users = get_user_model().objects
    operation = spec["operation"]
    if operation == "spend":
        txn, _job = services.spend(
            user=spec["user"], job_type=spec["job_type"], reference_id=spec["reference_id"]
        )
        return {"transaction": txn.pk}
    if operation == "transfer":
        result = services.transfer(
            sender=spec["user"],
            recipient=spec["to"],
            amount=spec["amount"],
            reference_id=spec["reference_id"],
        )
        return {"transaction": result.debit.pk}
    if operation == "refund":
        result = services.refund(
            spend_txn=spec["spend"],
            amount=spec["amount"],
            reason="crash test",
            actor=users.get(pk=spec["actor"]),
            reference_id=spec["reference_id"],
        )
        return {"transaction": result.transaction.pk}
    raise ValueError(operation)


if __name__ == "__main__":
    configure_child_process(sys.argv[1], {"WALLET_VELOCITY_LIMIT": 10**9})
    print("DONE", json.dumps(run(json.loads(sys.argv[2]))), flush=True)
