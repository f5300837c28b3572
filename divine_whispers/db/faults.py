"""Test-only fault hooks: crash points inside the money operations, and a switch that
removes the wallet row lock. They exist so the reliability suite can prove that a
process killed half-way leaves nothing partial, and that its concurrency tests really
fail when the lock they protect is gone.

Both are inert in production, by construction:

* They are armed only from the environment of a process at start-up
  (`DW_TEST_CRASH_POINT=<point>`, `DW_TEST_DISABLE_ROW_LOCKS=<exact opt-in phrase>`), or
  in-process by a test calling `arm()`.
* Even when armed they act only while the connected database's name starts with
  `test_`, the prefix Django's test runner gives its throwaway databases. A production
  database is never named so; setting the variable by mistake there changes nothing.
* The environment is read once, at import. When nothing is armed a crash point costs a
  function call and one `None` test; the lock switch one boolean test per lock.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

CRASH_POINT_ENV = "DW_TEST_CRASH_POINT"
NO_ROW_LOCKS_ENV = "DW_TEST_DISABLE_ROW_LOCKS"
# Only this exact value disables the lock: a stray "1" or "true" does nothing.
NO_ROW_LOCKS_OPT_IN = "yes-i-want-lost-updates-in-my-test-database"
REACHED_MARKER = "DW-CRASH-POINT-REACHED"

# Every crash point the services declare (a test naming another one is a typo).
CRASH_POINTS = frozenset(
    {
        "spend.locked",
        "spend.after_ledger_row",
        "spend.after_job",
        "spend.before_commit",
        "transfer.locked",
        "transfer.after_rows",
        "transfer.before_commit",
        "refund.locked",
        "refund.after_rows",
        "refund.before_commit",
        # Every operation (divine_whispers/db/transactions.py): at the start of its
        # transaction, as its COMMIT is about to be sent, and after the COMMIT, before the answer.
        "atomic.begin",
        "atomic.commit",
        "committed",
    }
)

_armed_point: str | None = os.environ.get(CRASH_POINT_ENV) or None
_armed_action: Callable[[str], None] | None = None
_row_locks_disabled: bool = os.environ.get(NO_ROW_LOCKS_ENV) == NO_ROW_LOCKS_OPT_IN


def on_test_database() -> bool:
    from django.db import connection

    return str(connection.settings_dict.get("NAME") or "").startswith("test_")


def _block_until_killed(point: str) -> None:
    """Tell the parent test where we are, then wait for its SIGKILL."""
    sys.stdout.write(f"{REACHED_MARKER} {point}\n")
    sys.stdout.flush()
    while True:  # pragma: no cover - ends by SIGKILL
        time.sleep(3600)


def crash_point(point: str) -> None:
    """A place inside an operation where a test may kill or disturb the process."""
    if _armed_point is None or point != _armed_point:
        return
    if not on_test_database():
        return
    (_armed_action or _block_until_killed)(point)


def arm(point: str | None, action: Callable[[str], None] | None = None) -> None:
    """In-process arming, for tests only (e.g. terminate the connection at `point`).

    `arm(None)` disarms. Without an action the process blocks until it is killed.
    """
    global _armed_point, _armed_action
    if point is not None and point not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {point!r}")
    _armed_point, _armed_action = point, action


def row_locks_disabled() -> bool:
    """True only in a test process started with the opt-in phrase, on a test database."""
    return _row_locks_disabled and on_test_database()
