"""`manage.py reap_jobs`: fail stuck jobs and refund failed ones (what every worker pass
also does) — for cron, or after a worker host died with no other worker running."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from tqdm import tqdm

from jobs import services


class Command(BaseCommand):
    help = (
        "Fail jobs stuck in `running` with no heartbeat for JOBS_RUNNING_TIMEOUT_SECONDS, "
        "then refund every failed job (exactly once per job)."
    )

    def handle(self, *args, **options) -> None:
        timeout = services.running_timeout()
        reaped: list[int] = []
        while batch := services.reap_stuck_jobs():
            reaped.extend(batch)
        for job_id in reaped:
            self.stdout.write(f"job {job_id}: no heartbeat for more than {timeout:g}s → failed")
        refunded: list[int] = []
        seen: set[int] = set()
        while failed := [job for job in services.failed_job_ids() if job not in seen]:
            with tqdm(total=len(failed), desc="refunding failed jobs", unit="job") as bar:
                done = services.refund_failed_jobs(failed, on_each=lambda *_: bar.update())
            seen.update(failed)
            if not done:
                break  # nothing refundable left (see the log for why)
            refunded.extend(done)
        for job_id in refunded:
            self.stdout.write(f"job {job_id}: refunded")
        self.stdout.write(
            self.style.SUCCESS(
                f"reap_jobs: {len(reaped)} stuck job(s) failed, {len(refunded)} job(s) refunded"
            )
        )
