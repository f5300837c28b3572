"""The README's taste and the API guide's curl walkthrough work as written, in order.

The shell blocks are read from the markdown itself (README "A taste of the API"; in
docs/api.md the "Walkthrough with curl" section and the approvals example) and run
literally by bash with `set -euo pipefail`, against `make run` started on a random
non-default port with a fresh SQLite file — so a hard-coded port, a reused
Idempotency-Key or a curl that fails silently breaks this test. The block that starts
`make run` itself is the one the test plays (with `PORT` set as the page says).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

from divine_whispers.tests.live_gunicorn import ROOT, free_port, wait_until_up
from divine_whispers.tests.markdown_blocks import shell_blocks


def documented_commands() -> list[str]:
    blocks = shell_blocks("README.md", "## A taste of the API") + shell_blocks(
        "docs/api.md", "## Walkthrough with curl", "## Approvals (four eyes) over HTTP"
    )
    starts_server = [b for b in blocks if re.fullmatch(r"(PORT=\d+ )?make run\n", b)]
    assert len(starts_server) == 1, "the walkthrough starts `make run` in a block of its own"
    return [b for b in blocks if b not in starts_server]


def test_readme_taste_then_walkthrough_run_literally_on_another_port(tmp_path):
    commands = documented_commands()
    assert len(commands) >= 8
    port = str(free_port())
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DEBUG", "DJANGO_SETTINGS_MODULE"}
        and not k.startswith(("PROMETHEUS_", "MIGRATE_", "STRIPE_", "PAYMENTS_", "LOCALSTRIPE_"))
    }
    # A user's shell has none of the suite's Stripe settings: make run starts its own
    # local Stripe (on a free port here, so parallel runs do not collide).
    env.update(
        PORT=port,
        SQLITE_PATH=str(tmp_path / "demo.sqlite3"),
        LOCALSTRIPE_PORT=str(free_port()),
    )
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server, log, seconds=240)
        # The pages say `export PORT=8123`: here the port make run really serves on.
        script = "\n".join(commands).replace("export PORT=8123", f"export PORT={port}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    out = done.stdout
    print(out)  # shown with -s, to compare with the pages
    for expected in [
        '{"user_id":2,"balance":600,',  # the taste, as bob
        '{"user_id":1,"balance":850,',  # the walkthrough starts where the page says
        "HTTP/1.1 201 Created",
        "Idempotent-Replayed: true",
        '"idempotency_key_reused"',
        "(422)",
        "(400)",
        '{"job":"cancelled","refund":50}',
        '{"user_id":1,"balance":825,',
        "(403)",
        '"self_approval_forbidden"',
        '"approval_not_pending"',
        "(409)",
    ]:
        assert expected in out, f"{expected!r} not in the output:\n{out}"
