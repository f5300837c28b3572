"""Loading the WSGI application loads every view and freezes what it loaded out of the
garbage collector's reach (the latency tail of full collections: divine_whispers/wsgi.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys
import divine_whispers.wsgi
print(json.dumps({"frozen": gc.get_freeze_count(), "views": "wallet.api.customer" in sys.modules}))
"""


def test_the_loaded_application_is_frozen_and_its_views_imported():
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "divine_whispers.settings"}
    env.pop("DATABASE_URL", None)  # loading touches no database
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["views"] is True
    assert loaded["frozen"] > 50_000  # the app's objects, not a handful
