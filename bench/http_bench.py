"""HTTP spend benchmark (filled in once the REST API is merged)."""

from __future__ import annotations


def steps(bench) -> list:
    def note() -> None:
        bench.extra["http"] = {"note": "REST API not available in this checkout"}

    return [("HTTP: REST API not merged yet, skipped", note)]
