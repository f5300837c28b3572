"""Logs and metrics: one JSON line per request and operation, and `/metrics`.

Apps register their own scrape-time gauges here (in `AppConfig.ready`), so this package
never imports an app."""
