"""The worker in this process: claim → run → record → refund, on real PostgreSQL.

transaction=True throughout: a worker commits its claim before the handler runs, and
refuses to run a handler inside a transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from jobs import handlers, services
from jobs.handlers import JobContext, registered
from jobs.models import Job, JobStatus
from jobs.tests.factories import JobTypeFactory
from jobs.tests.handlers_for_tests import COUNTED
from jobs.worker import WorkerPool
from wallet import services as wallet_services
from wallet.models import Transaction, TransactionType, Wallet
from wallet.tests.helpers import assert_ledger_consistent, run_concurrently

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_worker")]


def buy(user, code: str = "fortune", job_input: dict | None = None) -> Job:
    return wallet_services.spend(user=user, job_type=code, job_input=job_input).job


def balance(user) -> int:
    return Wallet.objects.get(user=user).balance


def job_refunds(job: Job) -> list[Transaction]:
    return list(
        Transaction.objects.filter(type=TransactionType.REFUND, related_transaction=job.transaction)
    )


def assert_refunded_once(job: Job) -> None:
    job.refresh_from_db()
    refunds = job_refunds(job)
    assert job.status == JobStatus.REFUNDED
    assert len(refunds) == 1, refunds
    assert refunds[0].reference_id == f"job:{job.pk}"
    assert refunds[0].amount == job.points_used


def drain() -> str:
    """Run the queue dry; the worker's log lines (it writes nothing else)."""
    out, lines = StringIO(), StringIO()
    handler = logging.StreamHandler(lines)
    worker_log = logging.getLogger("jobs.worker")
    worker_log.addHandler(handler)
    try:
        call_command("run_jobs", once=True, stdout=out)
    finally:
        worker_log.removeHandler(handler)
    assert out.getvalue() == ""
    return lines.getvalue()


def test_spend_then_run_jobs_completes_with_a_deterministic_reading(user, fund, job_type):
    fund(user, 100)
    question = {"question": "Will the harvest be good?", "name": "Mira"}
    job = buy(user, "fortune", question)

    output = drain()

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    expected = handlers.fortune(
        question, JobContext(job_id=job.pk, job_type="fortune", user_id=user.pk, attempt=1)
    )
    assert job.result == expected
    assert (job.attempts, job.error) == (1, "")
    assert job.started_at <= job.heartbeat_at <= job.finished_at
    assert f"job {job.pk} fortune: completed" in output
    assert balance(user) == 50 and job_refunds(job) == []
    assert_ledger_consistent()


def test_handler_error_fails_the_job_and_refunds_it_exactly_once(user, fund, job_type):
    fund(user, 100)
    job = buy(user, "fortune")

    def broken(job_input, context):
        raise RuntimeError("the crystal ball cracked")

    with registered("fortune", broken):
        output = drain()

    assert_refunded_once(job)
    assert job.error == "RuntimeError: the crystal ball cracked"
    assert job.result is None
    assert balance(user) == 100
    assert "refunded 50 pts" in output
    # Later passes find nothing more to do.
    assert services.sweep().refunded == []
    drain()
    assert_refunded_once(job)
    assert_ledger_consistent()


def test_a_handler_error_text_postgres_cannot_store_is_cleaned(user, fund, job_type):
    fund(user, 50)
    job = buy(user, "fortune")

    def nasty(job_input, context):
        raise RuntimeError("bad\x00byte " + "y" * 5000)

    with registered("fortune", nasty):
        drain()

    assert_refunded_once(job)
    assert job.error.startswith("RuntimeError: badbyte yyy") and len(job.error) == 2000
    assert len(job_refunds(job)[0].description) == 500


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (["not", "a", "dict"], "not a dict"),
        ({"when": object()}, "not JSON serializable"),
        ({"score": float("nan")}, "Out of range float values"),
        ({"text": "nul\x00byte"}, "NUL character"),
        ({"text": "x" * (70 * 1024)}, "more than 65536"),
    ],
)
def test_a_result_jsonb_cannot_store_fails_the_job(user, fund, job_type, result, error):
    fund(user, 100)
    job = buy(user, "fortune")
    with registered("fortune", lambda job_input, context: result):
        drain()
    assert_refunded_once(job)
    assert error in job.error


def test_a_job_type_without_a_handler_fails_and_is_refunded(user, fund):
    JobTypeFactory(code="crystal-skull", price=30)
    fund(user, 30)
    job = buy(user, "crystal-skull")

    drain()

    assert_refunded_once(job)
    assert job.error == "no handler registered for job type 'crystal-skull'"
    assert balance(user) == 30
    assert_ledger_consistent()


def test_horoscope_with_an_unknown_sign_is_refunded(user, fund):
    JobTypeFactory(code="horoscope", price=20)
    fund(user, 20)
    good = buy(user, "horoscope", {"sign": "virgo"})
    fund(user, 20)
    bad = buy(user, "horoscope", {"sign": "ophiuchus"})

    drain()

    good.refresh_from_db()
    assert good.status == JobStatus.COMPLETED and good.result["sign"] == "virgo"
    assert_refunded_once(bad)
    assert balance(user) == 20
    assert_ledger_consistent()


def test_claim_takes_the_oldest_pending_job_and_fences_it(user, fund, job_type):
    fund(user, 100)
    first, second = buy(user), buy(user)

    lease = services.claim_next_job()

    assert lease.job_id == first.pk and lease.attempt == 1
    first.refresh_from_db()
    assert first.status == JobStatus.RUNNING and first.heartbeat_at is not None
    assert services.claim_next_job().job_id == second.pk
    assert services.claim_next_job() is None
    # A stale lease (another attempt) can neither heartbeat nor record.
    stale = services.Lease(first.pk, "fortune", user.pk, 50, attempt=99)
    assert services.heartbeat(stale) is False
    assert services.complete_job(stale, {"x": 1}) is False
    assert services.heartbeat(lease) is True
    assert services.complete_job(lease, {"x": 1}) is True
    assert services.fail_job(lease, "too late") is False  # already completed
    first.refresh_from_db()
    assert (first.status, first.result) == (JobStatus.COMPLETED, {"x": 1})


def test_handlers_never_run_inside_a_transaction(user, fund, job_type):
    fund(user, 50)
    buy(user)
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside any database"):
        services.process_next_job()
    assert Job.objects.get().status == JobStatus.PENDING


def test_a_stuck_job_is_reaped_and_refunded_and_its_late_result_is_discarded(
    user, fund, job_type, settings
):
    fund(user, 100)
    job = buy(user)
    fresh = buy(user)
    lease = services.claim_next_job()  # the worker "dies" holding this lease
    services.claim_next_job()  # ... and this one keeps heartbeating
    settings.JOBS_RUNNING_TIMEOUT_SECONDS = 60
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=job.created_at.replace(year=job.created_at.year - 1)
    )

    out = StringIO()
    call_command("reap_jobs", stdout=out)

    assert_refunded_once(job)
    assert job.error.startswith("timed out: no heartbeat for more than 60s")
    fresh.refresh_from_db()
    assert fresh.status == JobStatus.RUNNING
    assert "1 stuck job(s) failed, 1 job(s) refunded" in out.getvalue()
    # The "dead" worker wakes up and tries to record: nothing is overwritten.
    assert services.complete_job(lease, {"late": True}) is False
    assert services.fail_job(lease, "late") is False
    assert_refunded_once(job)
    assert job.result is None
    assert balance(user) == 50  # the fresh job is still paid for
    assert_ledger_consistent()


def test_a_long_handler_keeps_its_job_alive_with_heartbeats(user, fund, job_type, settings):
    """A handler that runs 4x the timeout is not reaped while its worker heartbeats."""
    settings.JOBS_RUNNING_TIMEOUT_SECONDS = 0.5
    settings.JOBS_HEARTBEAT_SECONDS = 0.05
    fund(user, 50)
    job = buy(user)
    release = threading.Event()
    reaped_while_running: list[int] = []

    def long_handler(job_input, context):
        release.wait(timeout=30)
        return {"done": True}

    def run(i):
        if i == 0:
            return services.process_next_job()
        for _ in range(40):  # ~2 s of sweeps while the handler runs
            reaped_while_running.extend(services.sweep().reaped)
            release.wait(0.05)
        release.set()
        return None

    with registered("fortune", long_handler):
        outcome, _ = run_concurrently(run, 2)

    assert not isinstance(outcome, BaseException), outcome
    assert reaped_while_running == []
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.COMPLETED, {"done": True})
    assert job_refunds(job) == []


def test_a_hung_handler_stops_heartbeating_after_the_max_run_time(user, fund, job_type, settings):
    settings.JOBS_RUNNING_TIMEOUT_SECONDS = 0.3
    settings.JOBS_HEARTBEAT_SECONDS = 0.05
    settings.JOBS_MAX_RUN_SECONDS = 0.2
    fund(user, 50)
    job = buy(user)
    reaped = threading.Event()

    def hung(job_input, context):
        reaped.wait(timeout=30)  # "hangs" until the reaper has taken the job
        return {"too": "late"}

    def run(i):
        if i == 0:
            return services.process_next_job()
        try:
            for _ in range(600):
                if services.sweep().reaped:
                    return True
                time.sleep(0.05)
            return False
        finally:
            reaped.set()

    with registered("fortune", hung):
        outcome, was_reaped = run_concurrently(run, 2)

    assert was_reaped is True
    assert outcome.status == "lost"
    assert_refunded_once(job)
    assert job.result is None and job.error.startswith("timed out")
    assert balance(user) == 50


def test_a_job_reaped_while_its_handler_runs_is_not_overwritten(user, fund, job_type, settings):
    settings.JOBS_RUNNING_TIMEOUT_SECONDS = 60
    fund(user, 50)
    job = buy(user)

    def handler_whose_worker_looks_dead(job_input, context):
        Job.objects.filter(pk=context.job_id).update(
            heartbeat_at=job.created_at.replace(year=job.created_at.year - 1)
        )
        assert services.sweep().reaped == [context.job_id]
        return {"too": "late"}

    with registered("fortune", handler_whose_worker_looks_dead):
        outcome = services.process_next_job()

    assert outcome.status == "lost"
    assert_refunded_once(job)
    assert job.result is None
    assert balance(user) == 50
    assert_ledger_consistent()


def test_a_failed_job_left_unrefunded_by_a_crash_is_refunded_by_the_next_pass(user, fund, job_type):
    fund(user, 50)
    job = buy(user)
    lease = services.claim_next_job()
    assert services.fail_job(lease, "worker crashed before refunding") is True  # no refund yet
    assert balance(user) == 0

    drain()

    assert_refunded_once(job)
    assert balance(user) == 50
    assert_ledger_consistent()


def test_a_second_refund_of_the_same_job_is_a_no_op(user, fund, job_type):
    fund(user, 50)
    job = buy(user)
    lease = services.claim_next_job()
    services.fail_job(lease, "boom")
    assert services.refund_failed_job(job.pk, "boom") == 50
    rows = Transaction.objects.count()

    again = wallet_services.refund_job(
        job_id=job.pk,
        reason="again",
        final_status=JobStatus.REFUNDED,
        allowed_statuses=(JobStatus.FAILED,),
    )
    services.refund_failed_job(job.pk, "boom")
    services.sweep()

    assert again.replayed is True
    assert Transaction.objects.count() == rows
    assert_refunded_once(job)
    assert balance(user) == 50


def test_racing_refunds_of_one_failed_job_pay_once(user, fund, job_type):
    fund(user, 50)
    job = buy(user)
    services.fail_job(services.claim_next_job(), "boom")

    results = run_concurrently(lambda i: services.refund_failed_job(job.pk, "boom"), 8)

    assert all(not isinstance(r, BaseException) for r in results), results
    assert_refunded_once(job)
    assert balance(user) == 50
    assert_ledger_consistent()


def test_a_cancelled_job_is_never_run(user, fund, job_type, invocation_table):
    JobTypeFactory(code=COUNTED, price=10)
    fund(user, 10)
    job = buy(user, COUNTED)
    wallet_services.refund_job(
        job_id=job.pk,
        reason="cancelled by user",
        final_status=JobStatus.CANCELLED,
        allowed_statuses=(JobStatus.PENDING,),
    )

    drain()

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert invocation_table() == []
    assert len(job_refunds(job)) == 1
    assert_ledger_consistent()


def test_stop_finishes_the_running_job_and_claims_no_more(user, fund, job_type):
    fund(user, 100)
    first, second = buy(user), buy(user)
    started, proceed = threading.Event(), threading.Event()

    def gated(job_input, context):
        started.set()
        proceed.wait(timeout=30)
        return {"ok": True}

    pool = WorkerPool(concurrency=1, poll_interval=0.05)
    with registered("fortune", gated):
        runner = threading.Thread(target=pool.run)
        runner.start()
        assert started.wait(timeout=30)
        pool.request_stop()
        proceed.set()
        runner.join(timeout=30)

    assert not runner.is_alive()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == JobStatus.COMPLETED
    assert second.status == JobStatus.PENDING and second.attempts == 0


def test_release_puts_the_running_job_back_for_another_worker(user, fund, job_type):
    fund(user, 50)
    job = buy(user)
    started, proceed = threading.Event(), threading.Event()

    def gated(job_input, context):
        started.set()
        proceed.wait(timeout=30)
        return {"attempt": context.attempt}

    pool = WorkerPool(concurrency=1, poll_interval=0.05)
    with registered("fortune", gated):
        runner = threading.Thread(target=pool.run)
        runner.start()
        assert started.wait(timeout=30)
        pool.request_release()
        runner.join(timeout=30)
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
        proceed.set()  # the released handler finishes: its result must be discarded
        wait_for_threads = [t for t in threading.enumerate() if t.name == "jobs-worker-1"]
        for thread in wait_for_threads:
            thread.join(timeout=30)
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING
        drain()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.COMPLETED, 2, {"attempt": 2})
    assert pool.stats.snapshot().get("released") == 1
    assert balance(user) == 0 and job_refunds(job) == []


def test_run_jobs_refuses_a_bad_concurrency():
    with pytest.raises(CommandError, match="concurrency"):
        call_command("run_jobs", once=True, concurrency=0)


def test_a_job_still_running_when_the_grace_period_ends_is_released(user, fund, job_type):
    fund(user, 50)
    job = buy(user)
    started, proceed = threading.Event(), threading.Event()

    def gated(job_input, context):
        started.set()
        proceed.wait(timeout=30)
        return {}

    pool = WorkerPool(concurrency=1, poll_interval=0.05)
    with registered("fortune", gated):
        runner = threading.Thread(target=pool.run, kwargs={"grace_seconds": 0.2})
        runner.start()
        assert started.wait(timeout=30)
        pool.request_stop()  # SIGTERM: the handler does not finish within the grace period
        runner.join(timeout=30)
        job.refresh_from_db()
        proceed.set()
        for thread in threading.enumerate():
            if thread.name == "jobs-worker-1":
                thread.join(timeout=30)  # its late result is discarded

    assert not runner.is_alive()
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
    assert pool.stats.snapshot().get("released") == 1
