"""Meta-test: the concurrency tests can fail.

A concurrency test that passes with or without the lock it protects proves nothing.
Here the suite's concurrency tests run again in a child pytest with the test-only
switch that removes the wallet row lock (`SELECT … FOR UPDATE`, see divine_whispers/faults.py);
each of them must then FAIL — lost updates, torn snapshots, overdrafts.

The child uses its own database (`<name>_nolock`), so it never touches this run's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from divine_whispers.db import faults

THREAD_TESTS = [
    "wallet/tests/services/test_concurrency.py::test_32_threads_spending_on_one_wallet_never_overdraw",
    "wallet/tests/reliability/test_bank_workload.py"
    "::test_bank_workload_conserves_the_total_in_every_snapshot",
]
MORE_TESTS = [
    "wallet/tests/reliability/test_processes.py::test_hot_wallet_spends_from_several_processes",
    "wallet/tests/services/test_concurrency.py::test_opposite_transfers_do_not_deadlock_and_conserve_the_total",
    "wallet/tests/services/test_concurrency.py::test_concurrent_partial_refunds_never_over_refund",
]


def _separate_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        pytest.fail("the lock-switch meta-test needs DATABASE_URL (PostgreSQL)")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_nolock"))


def run_without_row_locks(tests: list[str]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        faults.NO_ROW_LOCKS_ENV: faults.NO_ROW_LOCKS_OPT_IN,
        "DATABASE_URL": _separate_database_url(),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rf",
            "--create-db",
            *tests,
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def assert_all_fail(tests: list[str]) -> None:
    result = run_without_row_locks(tests)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]  # 1 = tests ran and failed
    for test in tests:
        assert f"FAILED {test}" in output, f"{test} passed without the row lock:\n{output[-3000:]}"


def test_concurrency_tests_fail_without_the_row_lock():
    assert_all_fail(THREAD_TESTS)


@pytest.mark.stress
def test_more_concurrency_tests_fail_without_the_row_lock():
    assert_all_fail(MORE_TESTS)
