"""Job services: job type writes (the admin) and the worker's job state transitions.

Callers write `from jobs import services; services.claim_next_job()`: this package
re-exports the public names of its modules —

* `job_types`: `save_job_type`, the audited price change;
* `leases`: claim, heartbeat, complete / fail / release a claimed job;
* `running`: run a claimed job's handler, then record and refund;
* `sweeping`: refund failed jobs, reap stuck ones, the sweep of every worker pass.

Money moves only through `wallet.services`.
"""

from jobs.services.job_types import PRICE_CHANGED_ACTION, save_job_type
from jobs.services.leases import (
    ERROR_MAX_LENGTH,
    RECORD_ATTEMPTS,
    Lease,
    claim_next_job,
    complete_job,
    fail_job,
    heartbeat,
    heartbeat_interval,
    release_job,
    running_timeout,
)
from jobs.services.running import (
    RESULT_MAX_BYTES,
    JobOutcome,
    iter_outcomes,
    process_next_job,
    run_claimed_job,
)
from jobs.services.sweeping import (
    SweepResult,
    failed_job_ids,
    reap_stuck_jobs,
    refund_failed_job,
    refund_failed_jobs,
    sweep,
)

__all__ = [
    "ERROR_MAX_LENGTH",
    "PRICE_CHANGED_ACTION",
    "RECORD_ATTEMPTS",
    "RESULT_MAX_BYTES",
    "JobOutcome",
    "Lease",
    "SweepResult",
    "claim_next_job",
    "complete_job",
    "fail_job",
    "failed_job_ids",
    "heartbeat",
    "heartbeat_interval",
    "iter_outcomes",
    "process_next_job",
    "reap_stuck_jobs",
    "refund_failed_job",
    "refund_failed_jobs",
    "release_job",
    "run_claimed_job",
    "running_timeout",
    "save_job_type",
    "sweep",
]
