"""The test-only fault hooks stay inert unless deliberately armed on a test database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from divine_whispers.db import faults
from wallet.tests.reliability.test_crash_injection import ALL_POINTS


def test_every_declared_crash_point_is_in_the_services_and_exercised():
    """A crash point added without a crash test (or removed from the code) fails here."""
    assert {point for _, point, _ in ALL_POINTS} == faults.CRASH_POINTS
    root = Path(settings.BASE_DIR)
    source = "".join(path.read_text() for path in (root / "wallet" / "services").glob("*.py"))
    source += (root / "divine_whispers" / "db" / "transactions.py").read_text()
    for point in faults.CRASH_POINTS:
        assert f'"{point}"' in source, point


@pytest.fixture
def disarm():
    yield
    faults.arm(None)


def test_an_armed_crash_point_fires_only_on_a_test_database(db, disarm, monkeypatch):
    hits = []
    faults.arm("spend.locked", hits.append)
    faults.crash_point("spend.after_job")  # another point: nothing
    faults.crash_point("spend.locked")
    assert hits == ["spend.locked"]
    monkeypatch.setitem(connection.settings_dict, "NAME", "divine_whispers")  # production-like
    faults.crash_point("spend.locked")
    assert hits == ["spend.locked"]


def test_the_row_lock_switch_needs_a_test_database(db, monkeypatch):
    monkeypatch.setattr(faults, "_row_locks_disabled", True)
    assert faults.row_locks_disabled()
    monkeypatch.setitem(connection.settings_dict, "NAME", "divine_whispers")
    assert not faults.row_locks_disabled()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", False), ("true", False), ("yes", False), (faults.NO_ROW_LOCKS_OPT_IN, True)],
)
def test_the_row_lock_switch_needs_the_exact_opt_in_phrase(value, expected):
    code = "import divine_whispers.db.faults as f; print(f._row_locks_disabled)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={faults.NO_ROW_LOCKS_ENV: value, "PATH": "/usr/bin:/bin"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == str(expected)


def test_arming_an_unknown_point_is_refused():
    with pytest.raises(ValueError):
        faults.arm("spend.typo")
