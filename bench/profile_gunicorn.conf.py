"""gunicorn.conf.py plus a cProfile of each request of every worker, dumped when the
worker exits (bench/profile_http.py).

The server under the profiler is the production one (same config, same environment);
only the profiler is added. The first BENCH_PROFILE_SKIP requests of a worker (imports,
statement preparation) are left out, as a long-running server has done them long ago.
"""

import cProfile
import os
import time
from pathlib import Path

exec(Path(__file__).resolve().parent.parent.joinpath("gunicorn.conf.py").read_text())

PROFILE_DIR = os.environ.get("BENCH_PROFILE_DIR", "/tmp")
SKIP = int(os.environ.get("BENCH_PROFILE_SKIP", "50"))


def post_fork(server, worker):
    # CPU time of the worker process: waits for the database, the cache or a free core
    # are not counted, so the figures hold on a busy machine too.
    worker.profile = cProfile.Profile(time.process_time)
    worker.profiled_requests = -SKIP


def pre_request(worker, req):
    worker.profiled_requests += 1
    if worker.profiled_requests > 0:
        worker.profile.enable()


def post_request(worker, req, environ, resp):
    worker.profile.disable()


def worker_exit(server, worker):
    worker.profile.disable()
    if worker.profiled_requests > 0:
        worker.profile.dump_stats(
            f"{PROFILE_DIR}/worker-{worker.pid}-{worker.profiled_requests}.pstats"
        )
