"""Several workers over one queue: every job runs exactly once, every failure is refunded
exactly once, and the money still adds up. Threads (each its own connection) and real
`manage.py run_jobs` processes; SIGTERM and SIGKILL on a running worker process.

Handler invocations are counted through a database table written by the handler
itself (jobs/tests/handlers_for_tests.py), so calls made in other processes count too.
"""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass
from io import StringIO

import pytest
from django.core.management import call_command

from jobs.models import Job, JobStatus
from jobs.tests.conftest import wait_until
from jobs.tests.factories import JobTypeFactory
from jobs.tests.handlers_for_tests import COUNTED, SLOW
from jobs.worker import WorkerPool
from wallet import services as wallet_services
from wallet.models import Transaction, TransactionType, Wallet
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, run_concurrently

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_worker")]

PRICE = 7
NO_HANDLER = "test-no-handler"


@dataclass
class Workload:
    jobs: list[Job]
    expected_fail: set[int]  # ids whose handler raises
    no_handler: set[int]  # ids whose type has no handler
    initial: dict[int, int]  # user id → points deposited


def make_workload(
    staff, total: int, users: int = 10, fail_every: int = 9, sleep: float = 0
) -> Workload:
    JobTypeFactory(code=COUNTED, price=PRICE)
    JobTypeFactory(code=NO_HANDLER, price=PRICE)
    people = [UserFactory() for _ in range(users)]
    per_user = -(-total // users)
    initial = {}
    for person in people:
        initial[person.pk] = per_user * PRICE + 5
        wallet_services.deposit(
            user=person,
            amount=initial[person.pk],
            reference_id=f"pay-{person.pk}",
            actor=payment_account(),
        )

    def buy_all(index: int) -> list[tuple[int, Job, bool]]:
        """One thread per user: spends of different wallets do not wait for each other."""
        bought = []
        for n in range(index, total, users):
            if n % 50 == 17:
                bought.append(
                    (n, wallet_services.spend(user=people[index], job_type=NO_HANDLER).job, False)
                )
            else:
                fail = n % fail_every == 4
                job = wallet_services.spend(
                    user=people[index],
                    job_type=COUNTED,
                    job_input={"n": n, "fail": fail, "sleep": sleep},
                ).job
                bought.append((n, job, fail))
        return bought

    results = run_concurrently(buy_all, users)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors
    bought = sorted((entry for chunk in results for entry in chunk), key=lambda e: e[0])
    jobs = [job for _, job, _ in bought]
    expected_fail = {job.pk for _, job, fail in bought if fail}
    no_handler = {job.pk for n, job, _ in bought if n % 50 == 17}
    return Workload(jobs, expected_fail, no_handler, initial)


def assert_every_job_ran_once(work: Workload, invocations: list[tuple]) -> dict[str, int]:
    """The invariants, checked from the database; returns the figures for the report."""
    calls = Counter(job_id for job_id, *_ in invocations)
    handled = {job.pk for job in work.jobs} - work.no_handler
    assert set(calls) == handled, "a job's handler never ran, or a no-handler job ran"
    assert max(calls.values()) == 1, [job for job, n in calls.items() if n > 1]
    statuses = dict(Job.objects.values_list("id", "status"))
    should_refund = work.expected_fail | work.no_handler
    for job in work.jobs:
        wanted = JobStatus.REFUNDED if job.pk in should_refund else JobStatus.COMPLETED
        assert statuses[job.pk] == wanted, (job.pk, statuses[job.pk])
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}
    refunds = Counter(
        Transaction.objects.filter(type=TransactionType.REFUND).values_list(
            "related_transaction_id", flat=True
        )
    )
    refunded_spends = {job.transaction_id for job in work.jobs if job.pk in should_refund}
    assert set(refunds) == refunded_spends
    assert set(refunds.values()) == {1}
    for user_id, deposited in work.initial.items():
        completed = Job.objects.filter(user_id=user_id, status=JobStatus.COMPLETED).count()
        assert Wallet.objects.get(user_id=user_id).balance == deposited - PRICE * completed
    assert_ledger_consistent()
    call_command("verify_ledger", stdout=StringIO(), stderr=StringIO())  # raises on a finding
    return {
        "jobs": len(work.jobs),
        "handler_failures": len(work.expected_fail),
        "no_handler": len(work.no_handler),
        "refunds": sum(refunds.values()),
        "workers_seen": len({(pid, thread) for _, _, pid, thread in invocations}),
    }


def test_3_threads_run_300_jobs_exactly_once(staff, invocation_table):
    work = make_workload(staff, 300)

    pool = WorkerPool(concurrency=3, once=True, poll_interval=0.05, report=lambda *a: None)
    counts = pool.run()

    assert pool.errors == []
    figures = assert_every_job_ran_once(work, invocation_table())
    assert counts.get("completed", 0) + counts.get("refunded", 0) == 300
    print("threads:", figures, counts)


def test_3_worker_processes_run_300_jobs_exactly_once(staff, invocation_table, start_worker):
    work = make_workload(staff, 300)

    workers = [start_worker("--once") for _ in range(3)]
    codes = [worker.wait(timeout=300) for worker in workers]

    assert codes == [0, 0, 0], [worker.output()[-2000:] for worker in workers]
    figures = assert_every_job_ran_once(work, invocation_table())
    print("processes:", figures)


@pytest.mark.stress
def test_6_worker_processes_with_3_threads_run_3000_jobs_exactly_once(
    staff, invocation_table, start_worker
):
    work = make_workload(staff, 3000, users=30)

    workers = [start_worker("--once", "--concurrency", "3") for _ in range(6)]
    codes = [worker.wait(timeout=1800) for worker in workers]

    assert codes == [0] * 6, [worker.output()[-2000:] for worker in workers]
    print("stress:", assert_every_job_ran_once(work, invocation_table()))


def running(job: Job) -> bool:
    job.refresh_from_db()
    return job.status == JobStatus.RUNNING


def test_sigkill_mid_job_is_reaped_and_refunded_exactly_once(
    staff, user, fund, invocation_table, start_worker, settings
):
    JobTypeFactory(code=SLOW, price=40)
    fund(user, 100)
    job = wallet_services.spend(user=user, job_type=SLOW, job_input={"seconds": 120}).job
    timeout = 3
    worker = start_worker(JOBS_RUNNING_TIMEOUT_SECONDS=str(timeout), JOBS_HEARTBEAT_SECONDS="0.2")
    wait_until(lambda: invocation_table() and running(job), what="the worker to run the job")

    worker.proc.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=30) == -signal.SIGKILL

    settings.JOBS_RUNNING_TIMEOUT_SECONDS = timeout
    wait_until(
        lambda: call_command("reap_jobs") or not running(job),
        timeout=60,
        what="the reaper to fail the dead worker's job",
    )
    call_command("reap_jobs")  # a second reaper pass changes nothing

    job.refresh_from_db()
    assert job.status == JobStatus.REFUNDED
    assert job.error.startswith("timed out: no heartbeat")
    refunds = Transaction.objects.filter(type=TransactionType.REFUND)
    assert [(r.reference_id, r.amount) for r in refunds] == [(f"job:{job.pk}", 40)]
    assert Wallet.objects.get(user=user).balance == 100
    assert len(invocation_table()) == 1
    assert_ledger_consistent()


def test_sigterm_lets_the_running_job_finish_and_exits(user, fund, invocation_table, start_worker):
    JobTypeFactory(code=SLOW, price=10)
    fund(user, 20)
    first = wallet_services.spend(user=user, job_type=SLOW, job_input={"seconds": 1.5}).job
    second = wallet_services.spend(user=user, job_type=SLOW, job_input={"seconds": 1.5}).job
    worker = start_worker()
    wait_until(lambda: running(first), what="the worker to start the first job")

    worker.proc.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=60) == 0, worker.output()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == JobStatus.COMPLETED
    assert (second.status, second.attempts) == (JobStatus.PENDING, 0)
    assert "stopping: finishing 1 running job(s)" in worker.output()


def test_a_second_sigterm_releases_the_running_job(user, fund, invocation_table, start_worker):
    JobTypeFactory(code=SLOW, price=10)
    fund(user, 10)
    job = wallet_services.spend(user=user, job_type=SLOW, job_input={"seconds": 120}).job
    worker = start_worker()
    wait_until(lambda: running(job), what="the worker to start the job")

    worker.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping" in worker.output(), what="the worker to acknowledge")
    worker.proc.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=60) == 0, worker.output()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.heartbeat_at) == (JobStatus.PENDING, 1, None)
    assert f"job {job.pk} {SLOW} released back to pending" in worker.output()
    assert Wallet.objects.get(user=user).balance == 0  # still paid for: it will run again


@pytest.mark.stress
def test_killing_one_of_3_busy_worker_processes_loses_and_doubles_nothing(
    staff, invocation_table, start_worker, settings
):
    """SIGKILL lands wherever it lands (claim, handler, record, refund); afterwards every
    job is completed or refunded, no handler ran twice, nothing was refunded twice."""
    work = make_workload(staff, 900, users=15, sleep=0.05)  # most of a worker's time in handlers
    timeout = 2
    env = {"JOBS_RUNNING_TIMEOUT_SECONDS": str(timeout), "JOBS_HEARTBEAT_SECONDS": "0.2"}
    workers = [start_worker("--once", **env) for _ in range(3)]
    victim = workers[0]
    victim_ran = lambda: any(pid == victim.proc.pid for _, _, pid, _ in invocation_table())  # noqa: E731
    wait_until(victim_ran, timeout=120, what="the victim to run some jobs")

    victim.proc.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    assert [worker.wait(timeout=600) for worker in workers[1:]] == [0, 0]
    settings.JOBS_RUNNING_TIMEOUT_SECONDS = timeout
    wait_until(
        lambda: (
            call_command("reap_jobs")
            or not Job.objects.filter(status__in=[JobStatus.RUNNING, JobStatus.FAILED]).exists()
        ),
        timeout=60,
        what="the reaper to clean up after the victim",
    )
    call_command("run_jobs", once=True)  # jobs the victim left pending, if any

    calls = Counter(job_id for job_id, *_ in invocation_table())
    assert max(calls.values()) == 1
    statuses = dict(Job.objects.values_list("id", "status"))
    assert set(statuses.values()) <= {JobStatus.COMPLETED, JobStatus.REFUNDED}
    reaped = set(Job.objects.filter(error__startswith="timed out").values_list("id", flat=True))
    refunded = {job_id for job_id, status in statuses.items() if status == JobStatus.REFUNDED}
    assert refunded == work.expected_fail | work.no_handler | reaped
    refunds = Counter(
        Transaction.objects.filter(type=TransactionType.REFUND).values_list(
            "related_transaction_id", flat=True
        )
    )
    assert sum(refunds.values()) == len(refunded) and set(refunds.values()) == {1}
    assert_ledger_consistent()
    print("kill stress:", {"jobs": len(work.jobs), "reaped": len(reaped), "refunds": len(refunded)})
