"""Prometheus metrics: what the service counts, and the `/metrics` endpoint that exposes it.

Counters and histograms use the official `prometheus_client`. Under gunicorn every worker
is its own process, so a plain in-memory counter would show only the figures of whichever
worker answered the scrape. `gunicorn.conf.py` therefore sets `PROMETHEUS_MULTIPROC_DIR`
before any worker starts: each process then writes its samples to files in that folder and
`/metrics` adds them up (`MultiProcessCollector`). Without the variable (`runserver`, the
tests, a management command) the process's own registry is used.

Figures that describe the database (jobs by status, the oldest pending job, the last
`verify_ledger` run) are not counted by any process: they are read at scrape time, one
indexed query each, so every worker reports the same truth.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

PREFIX = "divine_whispers"

OPERATIONS = Counter(
    f"{PREFIX}_operations_total",
    "Money operations by outcome: ok, replayed, or the error code that refused them.",
    ["operation", "outcome"],
)
POINTS = Counter(
    f"{PREFIX}_points_total",
    "Points moved by committed ledger rows, by transaction type (absolute amounts).",
    ["type"],
)
LARGE_AMOUNTS = Counter(
    f"{PREFIX}_large_amount_events_total",
    "Ledger rows at or above WALLET_LARGE_AMOUNT_THRESHOLD (suspicious.large_amount events).",
    ["type"],
)
CACHE_ERRORS = Counter(
    f"{PREFIX}_cache_errors_total",
    "Cache (Redis) calls that failed or timed out; requests were served failing open.",
)
HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests_total",
    "HTTP requests by route (the URL pattern, not the raw path), method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "HTTP request duration by route, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# Each labelled series is looked up once per process and label set, then reused: on the
# hot path `.labels(...)` (validation, a lock, a dict) cost more than the increments.
# The label values are bounded (routes are URL patterns, methods a fixed list, outcomes
# and types constants), so these dictionaries stay small.
_series: dict[tuple, Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, values)
    child = _series.get(key)
    if child is None:
        child = _series.setdefault(key, metric.labels(*values))
    return child


def record_operation(operation: str, outcome: str) -> None:
    _child(OPERATIONS, operation, outcome).inc()


def record_points(txn_type: str, amount: int) -> None:
    _child(POINTS, txn_type).inc(abs(amount))
    if abs(amount) >= settings.WALLET_LARGE_AMOUNT_THRESHOLD:
        _child(LARGE_AMOUNTS, txn_type).inc()


def record_cache_error() -> None:
    """One cache outage observed (called by the cache guard when Redis fails)."""
    CACHE_ERRORS.inc()


def record_request(route: str, method: str, status: int, seconds: float) -> None:
    """Both request series of one answer (labels in declaration order: route, method,
    status)."""
    labels = (route, method, str(status))
    _child(HTTP_REQUESTS, *labels).inc()
    _child(HTTP_LATENCY, *labels).observe(seconds)


# --- Scrape-time figures from the database -------------------------------------------


ScrapeGauges = Callable[[], Iterable[GaugeMetricFamily]]
_scrape_gauges: list[ScrapeGauges] = []


def register_scrape_gauges(producer: ScrapeGauges) -> None:
    """An app adds gauges read from the database at scrape time (from `AppConfig.ready`).

    The foundation knows no app's tables: the jobs app reports its queue, the audit app
    the last `verify_ledger` run. Registration happens once per process, at start-up.
    """
    if producer not in _scrape_gauges:
        _scrape_gauges.append(producer)


def gauge(name: str, documentation: str, **kwargs) -> GaugeMetricFamily:
    """A scrape-time gauge under this service's metric prefix."""
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, **kwargs)


class DatabaseCollector:
    """Gauges read from the database when scraped (never counted by a process)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for producer in _scrape_gauges:
            yield from producer()


def _database_up_family(up: bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_metrics_database_up",
        "1 when the scrape could read the database figures, else 0.",
        value=1 if up else 0,
    )


def _database_figures() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    try:
        body = generate_latest(registry)
    except DatabaseError:  # Django discards a broken connection at the request's end
        body = b""
    return body + _single(_database_up_family(bool(body)))


class _One:
    def __init__(self, family: GaugeMetricFamily) -> None:
        self.family = family

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield self.family


def _single(family: GaugeMetricFamily) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_One(family))
    return generate_latest(registry)


def _process_figures() -> bytes:
    """Counters of every worker process (multi-process mode), else of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def serve_process_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """A process outside gunicorn (the job worker) serves its own counters on a port.

    Its counters (e.g. `job_refund` operations) would otherwise be visible to nobody: the
    app servers' /metrics only adds up the gunicorn workers. Scrape each worker process
    as its own target; bind to localhost unless the network in between is trusted.
    """
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)


# --- Access and the view -----------------------------------------------------------------


def _allowed_address(request: HttpRequest) -> bool:
    """REMOTE_ADDR only: a client-supplied X-Forwarded-For must never open the door."""
    address = request.META.get("REMOTE_ADDR", "")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for allowed in settings.METRICS_ALLOWED_IPS:
        try:
            if ip in ipaddress.ip_network(allowed, strict=False):
                return True
        except ValueError:
            continue
    return False


def _valid_token(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if not expected or scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for `Bearer METRICS_TOKEN` or an address in METRICS_ALLOWED_IPS."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse("method not allowed\n", status=405, content_type="text/plain")
    if not (_valid_token(request) or _allowed_address(request)):
        status = 401 if not request.headers.get("Authorization") else 403
        response = HttpResponse("forbidden\n", status=status, content_type="text/plain")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = _process_figures() + _database_figures()
    response = HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
    response["Cache-Control"] = "no-store"
    return response
