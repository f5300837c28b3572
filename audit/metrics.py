"""The last `verify_ledger` run as a scrape-time gauge, registered with /metrics at start-up.

Each run is a row (LedgerVerification), so the figure is the same whichever process
answers the scrape, and it survives restarts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily

from audit.models import LedgerVerification
from divine_whispers.observability.metrics import gauge


def ledger_verified_gauges() -> Iterator[GaugeMetricFamily]:
    verified = gauge(
        "ledger_verified_timestamp_seconds",
        "Unix time of the last verify_ledger run, by result (ok or findings).",
        labels=["result"],
    )
    for result, finished_at in LedgerVerification.objects.last_runs():
        verified.add_metric([result], finished_at.timestamp())
    yield verified
