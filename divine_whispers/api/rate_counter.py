"""A fixed-window request counter that is exact across processes, and fails open.

DRF's SimpleRateThrottle reads a list from the cache, appends, and writes it back: two
processes that read the same list both let their request through, which let ~20 % over
the limit under load. Here each window is one integer counter, incremented atomically:

* on Redis, one Lua script (INCR, PEXPIRE on the first hit, PTTL) in one round trip;
* on any other backend (local memory when CACHE_URL is unset), `add` + `incr`, which
  Django's local-memory cache does under its lock.

No maintained package does this for DRF with a fail-open policy (django-ratelimit, for
plain views, needs two round trips); the code is small and stays here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import BaseCache

# KEYS[1] = counter; ARGV[1] = window in ms. Returns {count, remaining ms}.
INCR_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Hit:
    count: int  # requests in this window, this one included
    retry_after: int  # whole seconds until the window ends (≥ 1)


def _redis_client(cache: BaseCache):
    """The raw redis-py client behind a django-redis cache, else None."""
    client = getattr(cache, "client", None)
    get_client = getattr(client, "get_client", None)
    return get_client(write=True) if callable(get_client) else None


def hit(cache: BaseCache, key: str, window_seconds: int) -> Hit:
    """Count one request in the current window of `key`; raises the cache's errors."""
    window_index = int(time.time() // window_seconds)
    full_key = cache.make_key(f"{key}:{window_index}")
    redis = _redis_client(cache)
    if redis is not None:
        count, ttl_ms = redis.eval(INCR_SCRIPT, 1, full_key, window_seconds * 1000)
        return Hit(int(count), max(1, math.ceil(int(ttl_ms) / 1000)))
    plain_key = f"{key}:{window_index}"
    cache.add(plain_key, 0, timeout=window_seconds)
    try:
        count = cache.incr(plain_key)
    except ValueError:  # expired between add and incr: a new window began
        cache.add(plain_key, 0, timeout=window_seconds)
        count = cache.incr(plain_key)
    remaining = (window_index + 1) * window_seconds - time.time()
    return Hit(count, max(1, math.ceil(remaining)))
