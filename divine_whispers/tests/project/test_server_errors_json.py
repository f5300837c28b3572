"""The errors gunicorn answers itself, from the server started as the docs say
(gunicorn -c gunicorn.conf.py, DEBUG off), over a real socket: JSON, not HTML.

Before divine_whispers/gunicorn_worker.py: a request line over 4,094 bytes got an HTML
414, a header over 8 KB an HTML 431, a NUL or DEL in a header an HTML 400 "Invalid HTTP
Header". And after a 413 the answer said `Connection: keep-alive` although the server
then closed the connection.
"""

from __future__ import annotations

import contextlib
import json
import socket

import pytest
from django.db import connection

from divine_whispers.http_headers import PERMISSIONS_POLICY
from divine_whispers.tests.served import free_port, production_env, raw_request, served

pytestmark = pytest.mark.django_db(transaction=True)

HOST = b"Host: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"postgres://{s['USER']}{password}@{host}:{port}/{s['NAME']}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        url = _database_url()
    port = free_port()
    env = production_env(url, port, GUNICORN_WORKERS="1")
    with served(env, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log") as port:
        yield port


CASES = {
    "request line over 4094 bytes": (
        b"GET /api/v1/jobs?page_size=" + b"1" * 5000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
        414,
        "request_too_large",
    ),
    "header over 8 KB": (
        b"GET /api/v1/jobs HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431,
        "request_too_large",
    ),
    "too many headers": (
        b"GET /api/v1/jobs HTTP/1.1\r\n"
        + HOST
        + b"".join(b"X-H%d: 1\r\n" % n for n in range(150))
        + b"\r\n",
        431,
        "request_too_large",
    ),
    "NUL in a header": (
        b"GET /api/v1/jobs HTTP/1.1\r\n" + HOST + b"X-Bad: a\x00b\r\n\r\n",
        400,
        "validation_error",
    ),
    "DEL in a header": (
        b"GET /api/v1/jobs HTTP/1.1\r\n" + HOST + b"X-Bad: a\x7fb\r\n\r\n",
        400,
        "validation_error",
    ),
    "bad header name": (
        b"GET /api/v1/jobs HTTP/1.1\r\n" + HOST + b"X Bad: 1\r\n\r\n",
        400,
        "validation_error",
    ),
    "malformed request line": (b"GET\r\n\r\n", 400, "validation_error"),
}


@pytest.mark.parametrize("case", CASES)
def test_gunicorn_refusals_are_the_json_error_body(server, case):
    data, status, code = CASES[case]
    answer = raw_request(server, data)
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    body = json.loads(answer.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert answer.headers["x-request-id"] == body["error"]["details"]["request_id"]
    assert answer.headers["permissions-policy"] == PERMISSIONS_POLICY
    assert answer.headers["connection"] == "close"


def test_a_413_says_connection_close_and_closes(server, client_for, user):
    authorization = client_for(user)._credentials["HTTP_AUTHORIZATION"].encode()
    body = b"{" + b" " * (3 * 1024 * 1024) + b"}"
    head = (
        b"POST /api/v1/wallet/spend HTTP/1.1\r\n"
        + HOST
        + b"Authorization: "
        + authorization
        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):  # the server may close before the body is all sent
            sock.sendall(body)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            received += chunk
    head_text = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head_text.startswith("http/1.1 413"), head_text
    assert "connection: close" in head_text
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_too_large"
