"""gunicorn settings for production; every value can be overridden from the environment.

Metrics across workers: each worker is its own process, so prometheus-client must run in
multi-process mode. `on_starting` (in the master, before any worker exists or imports
prometheus_client) points PROMETHEUS_MULTIPROC_DIR at an empty folder — the operator's
own when the variable is already set, else a fresh temporary one removed at exit — and
`child_exit` tells prometheus-client a worker is gone. Nothing else needs setting.
"""

import glob
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
# The application logs one line per request itself (request id, user, route, status,
# duration; JSON with LOG_FORMAT=json), so gunicorn's plain-text access log stays off.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
wsgi_app = "divine_whispers.wsgi:application"

_created_metrics_dir = None


def on_starting(server):
    """Give the workers an empty multi-process metrics folder (stale files would add up)."""
    global _created_metrics_dir
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)
    else:
        folder = _created_metrics_dir = tempfile.mkdtemp(prefix="dw-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    server.log.info("prometheus multi-process metrics in %s", folder)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _created_metrics_dir:
        shutil.rmtree(_created_metrics_dir, ignore_errors=True)
