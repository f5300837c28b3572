"""Peer endpoint for the HTTP benchmark: what a Django team would write in a day.

Bench-only: never part of the product's URLs. Served by bench/http_bench.py with the
same gunicorn.conf.py and production environment as the product, on its own copy of the
seeded database, with DJANGO_SETTINGS_MODULE=bench.peer.settings.
"""
