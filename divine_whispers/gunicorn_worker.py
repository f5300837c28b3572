"""gunicorn's threaded worker, with the answers gunicorn writes itself in the JSON envelope.

Some requests never reach Django: gunicorn refuses a request line over 4,094 bytes (414),
a header over 8,190 bytes or too many headers (431), a header it cannot parse — a NUL or
DEL in it, a bad name, obsolete folding — (400 "Invalid HTTP Header"), an unsupported
transfer coding (501), with a small HTML page of its own. The contract says every error
under /api/ is the JSON error body, whoever raises it. gunicorn writes those pages with
one function, `gunicorn.util.write_error`, looked up at call time; this worker replaces
it, in its own process, with one that writes the same status as the JSON envelope
(`{"error": {"code", "message", "details"}}`), a fresh X-Request-ID, and the headers every
response of the service carries. Such a request has no trustworthy path, so every one of
these answers is JSON (the admin is not concerned: its pages are never that long).

It also says `Connection: close` on a 413: Django refused the body without reading it, so
gunicorn cannot reuse the connection — before, the answer claimed keep-alive and the
server then closed it.

gunicorn loads this module in the master, before the settings are read: nothing imported
here reads them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from divine_whispers.http_headers import PERMISSIONS_POLICY

# The code of each status gunicorn answers itself (the catalogue's codes where one fits).
CODES = {
    400: "validation_error",
    403: "permission_denied",
    414: "request_too_large",
    417: "validation_error",
    431: "request_too_large",
    500: "internal_error",
    501: "validation_error",
}
MESSAGES = {
    400: "Malformed HTTP request: {detail}",
    414: "The request line (method, path and query string) is over 4094 bytes.",
    431: "A request header is too large, or there are too many headers: {detail}",
}


def json_error_response(status: int, reason: str, detail: str) -> bytes:
    """The whole HTTP response gunicorn sends for a request it refused itself."""
    request_id = uuid.uuid4().hex
    code = CODES.get(status, "validation_error" if status < 500 else "internal_error")
    message = MESSAGES.get(status, "{detail}").format(detail=detail or reason)
    body = json.dumps(
        {"error": {"code": code, "message": message, "details": {"request_id": request_id}}}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Permissions-Policy: {PERMISSIONS_POLICY}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for gunicorn.util.write_error (same signature, same socket write)."""
    util.write_nonblock(sock, json_error_response(status_int, reason, mesg))


def close_after_refused_body(app: Callable) -> Callable:
    """WSGI wrapper: a 413 closes the connection, and its answer says so."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def starting(status: str, headers: list, exc_info: Any = None) -> Callable:
            if status.startswith("413"):
                response = getattr(start_response, "__self__", None)  # gunicorn's Response
                if response is not None and hasattr(response, "force_close"):
                    response.force_close()
            return start_response(status, headers, exc_info)

        return app(environ, starting)

    return wrapped


class JsonErrorsThreadWorker(ThreadWorker):
    """gunicorn.conf.py's `worker_class`: the gthread worker, JSON for its own errors."""

    def init_process(self) -> None:
        util.write_error = write_json_error  # this worker process only
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = close_after_refused_body(self.wsgi)
