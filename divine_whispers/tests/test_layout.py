"""The import rules of .importlinter hold: the transaction helper and the audit leaf do not
depend on the wallet app, and bench/ has no import cycle (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from django.conf import settings


def test_import_rules_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
