"""What a benchmark run measures: client counts, modes and the systems, in table order.

Shared by bench/run.py (which measures) and bench/report.py (which renders a results
file), so that neither imports the other, and the docs site's performance page can
render bench/results/latest.json without importing the harness.
"""

CLIENTS = (1, 8, 16)
MODES = ("spread", "hot")

# Systems measured at every client count and mode, in table order.
SYSTEM_LABELS = {
    "pgbench": "pgbench, prepared (ceiling)",
    "floor": "raw psycopg 3 threads (floor)",
    "orm": "naive Django ORM (peer)",
    "djwallet": "dj-wallet withdraw (peer)",
    "ours": "ours: services.spend, threads",
    "ours_2proc": "ours: services.spend, 2 processes",
    "http": "ours: HTTP POST /wallet/spend",
}
# Rows beside the grid (HTTP block, transfers).
EXTRA_LABELS = {
    "http_balance": "ours: HTTP GET /wallet/balance",
    "http_peer": "peer: DRF + token auth + dj-wallet withdraw over HTTP",
    "http_floor": "floor: minimal WSGI app (no Django), HTTP POST spend",
    "http_floor_balance": "floor: minimal WSGI app (no Django), HTTP GET balance",
    "ours_ref": "ours: services.spend, threads (HTTP block's reference)",
    "transfer": "ours: services.transfer (spread: random pairs; hot: A↔B)",
    "pgbench_min": "pgbench_min",
    "floor_min": "floor_min",
    "ours_noaudit": "ours_noaudit",
}
