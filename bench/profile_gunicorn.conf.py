"""gunicorn.conf.py plus a per-request CPU account of its worker (bench/profile_http.py).

The server under measurement is the production one (same config, same environment); only
these hooks are added. The first BENCH_PROFILE_SKIP requests of a worker (imports,
statement preparation) are left out, as a long-running server has done them long ago.

BENCH_PROFILE_MODE=cprofile (default): a cProfile of each request, dumped when the worker
exits (the call tree: where the time goes, about 2-3 × the real cost).
BENCH_PROFILE_MODE=cpu: no profiler, only clocks: the worker's process CPU from the first
measured request to the last (HTTP parsing included), the CPU inside the WSGI app, and the
CPU inside `services.spend` (wrapped with a thread-CPU timer) — the real figures.
"""

import cProfile
import functools
import json
import os
import time
from pathlib import Path

exec(Path(__file__).resolve().parent.parent.joinpath("gunicorn.conf.py").read_text())

PROFILE_DIR = os.environ.get("BENCH_PROFILE_DIR", "/tmp")
SKIP = int(os.environ.get("BENCH_PROFILE_SKIP", "50"))
MODE = os.environ.get("BENCH_PROFILE_MODE", "cprofile")


def post_fork(server, worker):
    # CPU time of the worker process: waits for the database, the cache or a free core
    # are not counted, so the figures hold on a busy machine too.
    worker.profile = cProfile.Profile(time.process_time)
    worker.profiled_requests = -SKIP
    worker.cpu = {"first": None, "last": None, "app": 0.0, "spend": 0.0, "started": 0.0}


def post_worker_init(worker):
    """Wrap services.spend with a thread-CPU timer (the app is loaded by now)."""
    if MODE != "cpu":
        return
    import wallet.services

    original = wallet.services.spend

    @functools.wraps(original)
    def timed_spend(*args, **kwargs):
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            if worker.profiled_requests > 0:
                worker.cpu["spend"] += time.thread_time() - started

    wallet.services.spend = timed_spend


def pre_request(worker, req):
    worker.profiled_requests += 1
    if worker.profiled_requests <= 0:
        return
    if MODE == "cpu":
        if worker.cpu["first"] is None:
            worker.cpu["first"] = time.process_time()
        worker.cpu["started"] = time.thread_time()
    else:
        worker.profile.enable()


def post_request(worker, req, environ, resp):
    if MODE == "cpu":
        if worker.profiled_requests > 0:
            worker.cpu["app"] += time.thread_time() - worker.cpu["started"]
            worker.cpu["last"] = time.process_time()
        return
    worker.profile.disable()


def worker_exit(server, worker):
    worker.profile.disable()
    if worker.profiled_requests <= 0:
        return
    name = f"{PROFILE_DIR}/worker-{worker.pid}-{worker.profiled_requests}"
    if MODE == "cpu":
        cpu = worker.cpu
        # The last request's post_request ran: count from the first to the last one.
        figures = {
            "requests": worker.profiled_requests,
            "process_cpu_s": (cpu["last"] or 0) - (cpu["first"] or 0),
            "app_cpu_s": cpu["app"],
            "spend_cpu_s": cpu["spend"],
        }
        Path(f"{name}.json").write_text(json.dumps(figures))
    else:
        worker.profile.dump_stats(f"{name}.pstats")
