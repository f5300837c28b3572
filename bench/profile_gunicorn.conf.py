"""gunicorn.conf.py plus a cProfile of every worker, dumped when the worker exits.

`python -m bench.profile_http` uses it: the server under the profiler is the production
one (same config, same environment); only the profiler is added.
"""

import cProfile
import os
from pathlib import Path

exec(Path(__file__).resolve().parent.parent.joinpath("gunicorn.conf.py").read_text())

PROFILE_DIR = os.environ.get("BENCH_PROFILE_DIR", "/tmp")


def post_fork(server, worker):
    worker.profile = cProfile.Profile()
    worker.profile.enable()


def worker_exit(server, worker):
    worker.profile.disable()
    worker.profile.dump_stats(f"{PROFILE_DIR}/worker-{worker.pid}.pstats")
