"""gunicorn as docs/operations/production.md starts it: quiet static files, a control
socket of its own per instance, and no scheme believed from an untrusted peer.

* Static files come from the installed apps' folders (settings.py): no worker warns
  `No directory at: …/staticfiles/`, and the admin's CSS and Swagger UI's assets answer.
* Two instances on one machine each keep their own control socket: stopping one leaves
  the other's in place (gunicorn's default is one path per user).
* With HTTPS=1, a plain request from 127.0.0.1 claiming `X-Forwarded-Proto: https` is
  redirected like any plain request (gunicorn's default would trust localhost).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from divine_whispers.tests.live_gunicorn import gunicorn, production_env, request, server_url

pytestmark = pytest.mark.django_db


def control_socket(base: str) -> Path:
    """The path gunicorn.conf.py gives the instance bound to `base`'s address."""
    bind = base.removeprefix("http://")
    folder = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(folder) / ("gunicorn-" + "".join(c if c.isalnum() else "-" for c in bind) + ".ctl")


def test_static_files_are_served_without_a_warning(tmp_path):
    with gunicorn(production_env(server_url()), tmp_path, "--workers", "2") as server:
        for path in (
            "/static/admin/css/base.css",
            "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        ):
            status, _headers, body = request(server.base + path)
            assert status == 200 and body, path
        status, _headers, page = request(server.base + "/api/docs/")
        assert status == 200 and b"swagger-ui" in page
    stderr = server.stderr()
    assert "Booting worker" in stderr  # the log is the workers' (two of them)
    assert "No directory at" not in stderr, stderr
    assert "Warning" not in stderr, stderr


def test_two_instances_keep_their_own_control_socket_and_no_scheme_is_trusted(tmp_path):
    with gunicorn(production_env(server_url()), tmp_path / "a") as first:
        first_socket = control_socket(first.base)
        assert first_socket.exists(), first.stderr()
        https = production_env(server_url(), HTTPS="1")
        with gunicorn(https, tmp_path / "b") as second:
            second_socket = control_socket(second.base)
            assert second_socket.exists() and second_socket != first_socket
            status, headers, _body = request(
                second.base + "/api/v1/job-types", headers={"X-Forwarded-Proto": "https"}
            )
            assert status == 301, (status, headers)
            assert headers["Location"].startswith("https://")
        assert not second_socket.exists()  # gone with its own instance ...
        assert first_socket.exists()  # ... and the first one's is still there
        assert request(first.base + "/healthz")[0] == 200
    assert not first_socket.exists()
