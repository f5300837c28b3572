"""The rate limit holds exactly, across threads and across server processes.

DRF's stock throttle read a list from the cache and wrote it back, so concurrent requests
of one client all saw room left (~20 % over the limit). The counter is now one atomic
Redis operation per request. These tests use Redis DB 1 with a key prefix of their own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connections

from divine_whispers.tests.cache_servers import redis_cache_settings

REDIS_TEST_URL = os.environ.get("DW_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
ROOT = Path(__file__).resolve().parents[3]


def _redis_available() -> bool:
    import redis

    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=1).ping()
    except (redis.RedisError, OSError):
        return False
    return True


pytestmark = pytest.mark.skipif(not _redis_available(), reason=f"no Redis at {REDIS_TEST_URL}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_threads_of_one_user_get_exactly_the_limit(settings, user, client_for):
    # Exactness, not outage handling, is under test: a generous timeout keeps a busy machine's
    # slow Redis answer from failing open (which would let every request through).
    settings.CACHES = redis_cache_settings(REDIS_TEST_URL, timeout_ms=5_000)
    settings.CACHES["default"]["KEY_PREFIX"] = f"dw-test-{uuid.uuid4().hex}"
    settings.API_THROTTLE_RATE = "50/day"

    def burst(_: int) -> list[int]:
        client = client_for(user)
        try:
            return [client.get("/api/v1/wallet/balance").status_code for _ in range(15)]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = Counter(code for codes in pool.map(burst, range(8)) for code in codes)

    assert statuses == {200: 50, 429: 8 * 15 - 50}
    refused = client_for(user).get("/api/v1/wallet/balance")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 86_400  # what is left of the day's window


@pytest.fixture
def gunicorn_with_redis(tmp_path):
    """gunicorn.conf.py with 3 workers, sharing a Redis cache, anonymous rate 40/day."""
    port = _free_port()
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "3",
        "CACHE_URL": f"{REDIS_TEST_URL}?key_prefix=dw-test-{uuid.uuid4().hex}",
        "API_ANON_THROTTLE_RATE": "40/day",
        "CACHE_TIMEOUT_MS": "5000",  # exactness under test, not fail-open on a busy machine
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [str(gunicorn), "-c", "gunicorn.conf.py"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=30).status
    except urllib.error.HTTPError as error:
        return error.code


def test_server_processes_share_one_exact_limit(gunicorn_with_redis):
    url = f"{gunicorn_with_redis}/api/docs/"  # anonymous, throttled per address

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = Counter(pool.map(_status, [url] * 90))

    assert statuses == {200: 40, 429: 50}
