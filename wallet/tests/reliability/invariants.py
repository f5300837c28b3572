"""Every invariant the reliability suite asserts after a workload or a fault."""

from __future__ import annotations

from wallet.tests.helpers import assert_ledger_consistent
from wallet.verification import verify_ledger


def assert_all_invariants() -> None:
    """The suite's own checks, then the operators' `verify_ledger` (hash chains included)."""
    assert_ledger_consistent()
    report = verify_ledger()
    assert report.clean, "verify_ledger:\n" + "\n".join(f.line() for f in report.findings[:20])
