"""The job queue's scrape-time gauges, registered with /metrics when the app is ready.

Read from the database at each scrape (one indexed query each), so every app server and
worker reports the same queue whatever process answers the scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from divine_whispers.observability.metrics import gauge
from jobs.models import Job, JobStatus


def job_queue_gauges() -> Iterator[GaugeMetricFamily]:
    jobs = gauge("jobs", "Jobs by status.", labels=["status"])
    # One GROUP BY over the (status, created_at) index; every status is reported,
    # 0 included, so an alert never sees a series vanish.
    counts = dict.fromkeys(JobStatus.values, 0)
    for status, n in Job.objects.order_by().values_list("status").annotate(n=Count("id")):
        counts[status] = n
    for status, n in sorted(counts.items()):
        jobs.add_metric([status], n)
    yield jobs

    oldest = (
        Job.objects.filter(status=JobStatus.PENDING)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    age = max(0.0, time.time() - oldest.timestamp()) if oldest else 0.0
    yield gauge(
        "job_oldest_pending_seconds",
        "Age of the oldest pending job (0 when none is pending).",
        value=age,
    )
