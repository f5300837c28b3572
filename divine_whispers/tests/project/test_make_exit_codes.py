"""Make targets that wrap a script with documented exit codes say the script's own code.

GNU make exits 2 for any failed recipe, so `make dr-drill` cannot exit 1 for "differences
found". The Makefile's `script` wrapper prints the script's real code on stderr and the
pages send cron and CI to the script itself, whose code arrives unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from divine_whispers.tests.live_gunicorn import ROOT


def fake_drill(tmp_path: Path, code: int) -> Path:
    script = tmp_path / f"drill-{code}.sh"
    script.write_text(f'#!/bin/sh\necho "drill args: $*"\nexit {code}\n')
    script.chmod(0o755)
    return script


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_make_names_the_drills_own_code(tmp_path):
    for code, meaning in [(1, "1: differences found"), (2, "2: the drill could not run")]:
        done = make("dr-drill", f"DR_DRILL={fake_drill(tmp_path, code)}", "ARGS=--ops 5")
        assert done.returncode == 2  # GNU make's own status for any failure
        assert "drill args: --ops 5" in done.stdout
        assert f"drill-{code}.sh exited {code} " in done.stderr, done.stderr
        assert meaning in done.stderr


def test_a_passing_drill_passes_through_make_silently(tmp_path):
    done = make("dr-drill", f"DR_DRILL={fake_drill(tmp_path, 0)}")
    assert done.returncode == 0
    assert "exited" not in done.stderr


def test_the_drill_script_itself_exits_with_its_documented_code():
    """Called directly (as cron and CI should), bad arguments are "could not run": 2."""
    done = subprocess.run(
        ["scripts/dr-drill.sh", "--no-such-option"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "unrecognized arguments: --no-such-option" in done.stderr
