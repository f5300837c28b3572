"""`make dr-drill` end to end (marker `stress`: ~1-2 minutes; run with `make stress`).

Also shows the drill is not a test that cannot fail: restoring to a moment inside the
acknowledged load must be reported as lost operations, with exit 1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.stress


def _drill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/dr_drill.py", "--ops", "80", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_drill_restores_to_the_target_and_proves_it():
    run = _drill()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "RESULT: OK" in run.stdout


def test_drill_catches_a_restore_that_lost_acknowledged_operations():
    run = _drill("--target-inside-load")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "acknowledged before the target are missing" in run.stdout
    assert "verify_ledger --checkpoint failed" in run.stdout
