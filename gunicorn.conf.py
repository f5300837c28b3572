"""gunicorn settings for production; every value can be overridden from the environment.

Metrics across workers: each worker is its own process, so prometheus-client must run in
multi-process mode. Loading this file (in the master, before the app or prometheus_client
is imported and before any worker exists) points PROMETHEUS_MULTIPROC_DIR at an empty
folder — the operator's own when the variable is already set, else a fresh temporary one
removed at exit — and `child_exit` tells prometheus-client a worker is gone. Nothing else
needs setting.
"""

import atexit
import glob
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One process per core, four threads each (gthread worker): measured against 2 × cores
# sync workers in interleaved rounds (README "Performance", bench/results/
# http_worker_ab.json and latest.json), it served more spends in every round (balance
# reads: mixed; GUNICORN_THREADS=1 GUNICORN_WORKERS=4 is the old model). Threads keep
# HTTP connections alive (a sync worker closes each one) and overlap the database and
# cache round trips of one request with another's Python; each thread keeps its own
# persistent database connection (CONN_MAX_AGE), so a server holds workers × threads.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# gunicorn's gthread worker, answering the errors gunicorn raises itself (414, 431, a
# malformed header) with the JSON error body: divine_whispers/gunicorn_worker.py. It is
# the threaded worker even with GUNICORN_THREADS=1.
worker_class = "divine_whispers.gunicorn_worker.JsonErrorsThreadWorker"
# A worker whose main loop stops answering the master for this long is restarted. Requests
# run on the worker's threads and are bounded by the database bounds themselves
# (DATABASE_REQUEST_TIMEOUT_SECONDS, 10 s; the finance report DATABASE_REPORT_TIMEOUT_SECONDS,
# 30 s; a CSV export streams, each chunk within DATABASE_EXPORT_TIMEOUT_SECONDS): 60 s is
# past the longest of them that is not a stream, so a request is never the cause.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = 30
# The application logs one line per request itself (request id, user, route, status,
# duration; JSON with LOG_FORMAT=json), so gunicorn's plain-text access log stays off.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
wsgi_app = "divine_whispers.wsgi:application"
# gunicorn's control socket defaults to one path per user ($XDG_RUNTIME_DIR or
# ~/.gunicorn/gunicorn.ctl): a second instance took it over and, stopping, removed the
# first one's. One per bind address instead (two instances cannot share one);
# GUNICORN_CONTROL_SOCKET=PATH chooses it, GUNICORN_CONTROL_SOCKET=off turns it off.
_ctl = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = _ctl == "off"
control_socket = (
    _ctl
    if _ctl not in ("", "off")
    else os.path.join(
        os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(),
        "gunicorn-" + "".join(c if c.isalnum() else "-" for c in bind) + ".ctl",
    )
)
# Which peers gunicorn believes about the scheme (X-Forwarded-Proto …): nobody by default
# (gunicorn's own default trusts 127.0.0.1, so with HTTPS=1 a local plain request claiming
# https was served). Django decides with SECURE_PROXY_SSL_HEADER; list your TLS proxies in
# FORWARDED_ALLOW_IPS (gunicorn's variable) only if gunicorn itself must trust them.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")

_READY = "_DW_METRICS_DIR_READY"
_CREATED = "_DW_METRICS_DIR_CREATED"  # in the environment: survives a reload of this file


def _remove_if_master(folder, master_pid):
    if os.getpid() == master_pid:
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_orphaned_dirs():
    """Folders of masters that died without cleaning up (SIGKILL): named by their pid."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "dw-metrics-*-*")):
        pid = os.path.basename(path).split("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _prepare_metrics_dir():
    """Runs when the master loads this file, i.e. before the app is imported anywhere (even
    with --preload) and before any worker starts. A reload (SIGHUP) of the same master
    keeps the folder: the live workers' files are still in it."""
    if os.environ.get(_READY) == str(os.getpid()):
        return
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)
    else:
        _remove_orphaned_dirs()
        folder = tempfile.mkdtemp(prefix=f"dw-metrics-{os.getpid()}-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_CREATED] = folder
        # Removed when the master's interpreter exits — also when it stops at start (an
        # insecure configuration), where on_exit is never called. Workers are forked
        # and inherit the handler, hence the pid check.
        atexit.register(_remove_if_master, folder, os.getpid())
    os.environ[_READY] = str(os.getpid())


_prepare_metrics_dir()


def on_starting(server) -> None:
    """Load the Django settings in the master, before any worker forks.

    An insecure production configuration (divine_whispers/production.py) then stops
    gunicorn at once with the variable's name, instead of a loop of workers failing to boot.
    """
    server.log.info(
        "prometheus multi-process metrics in %s", os.environ["PROMETHEUS_MULTIPROC_DIR"]
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "divine_whispers.settings")
    from django.conf import settings

    settings.SECRET_KEY  # noqa: B018 - importing the settings is the check


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
