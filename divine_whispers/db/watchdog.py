"""The client side of a statement's bound: a database too stuck to cancel it itself.

`statement_timeout` is enforced by the server; a server that accepts connections but never
answers (a stuck process, a half-dead proxy) enforces nothing, and psycopg waits on the
socket for ever — the one wait no server setting bounds. Here every statement is armed
with its deadline (divine_whispers/db/bounds.py); one daemon thread per process sleeps
until the nearest deadline and, if that statement is still running, shuts its socket
down. psycopg then fails the statement at once ("server closed the connection"), Django
raises OperationalError and the API answers 503 (`details.outcome` as usual: not_applied
before the COMMIT was sent, unknown during it). Django throws the broken connection away.

Cost for a statement that answers in time: one lock, one heap push, one flag.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class _Entry:
    __slots__ = ("active", "deadline", "fileno", "fired", "order")

    def __init__(self, deadline: float, order: int, fileno: int) -> None:
        self.deadline, self.order, self.fileno = deadline, order, fileno
        self.active, self.fired = True, False

    def __lt__(self, other: _Entry) -> bool:
        return (self.deadline, self.order) < (other.deadline, other.order)


class _Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Entry] = []
        self._order = itertools.count()
        self._owner_pid: int | None = None

    def arm(self, deadline: float, fileno: int) -> _Entry:
        entry = _Entry(deadline, next(self._order), fileno)
        with self._cond:
            self._ensure_thread()
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    def disarm(self, entry: _Entry) -> bool:
        """Stop watching; True when the watchdog had already cut the connection."""
        with self._cond:
            entry.active = False
            return entry.fired

    def _ensure_thread(self) -> None:
        """One thread per process (a forked gunicorn worker starts its own)."""
        if self._owner_pid == os.getpid():
            return
        self._heap.clear()
        self._owner_pid = os.getpid()
        threading.Thread(target=self._run, name="db-statement-watchdog", daemon=True).start()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and not self._heap[0].active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)
                entry.active, entry.fired = False, True
                _cut(
                    entry.fileno
                )  # under the lock: the statement cannot finish and close meanwhile


def _cut(fileno: int) -> None:
    """Shut the connection's socket down (both ways): the blocked read returns at once."""
    try:
        sock = socket.socket(fileno=os.dup(fileno))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()  # the duplicate only; psycopg still owns (and will close) the original


_WATCHDOG = _Watchdog()


@contextmanager
def watched(deadline: float, fileno: int) -> Iterator[_Entry]:
    """Cut the connection on `fileno` if the block is still running at `deadline`; the
    entry's `fired` then says so."""
    entry = _WATCHDOG.arm(deadline, fileno)
    try:
        yield entry
    finally:
        _WATCHDOG.disarm(entry)
