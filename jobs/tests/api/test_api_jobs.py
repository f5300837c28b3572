"""Jobs over HTTP: a user's own jobs only, cancelling a pending job (refunded once),
and the job types on sale."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobStatus
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, Wallet
from wallet.tests.api_helpers import error_of
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs"
JOB_TYPES = "/api/v1/job-types"


@pytest.fixture
def as_user(user, client_for):
    return client_for(user)


@pytest.fixture
def job(user, fund, job_type) -> Job:
    fund(user, 200)
    return services.spend(user=user, job_type="fortune", job_input={"q": "love?"}).job


@pytest.fixture
def their_job(other_user, fund, job_type) -> Job:
    fund(other_user, 200)
    return services.spend(user=other_user, job_type="fortune").job


def set_status(job: Job, status: str) -> None:
    Job.objects.filter(pk=job.pk).update(status=status)


def test_user_lists_own_jobs_newest_first(user, job, their_job, as_user, job_type):
    second = services.spend(user=user, job_type="fortune").job

    response = as_user.get(JOBS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert [row["id"] for row in body["results"]] == [second.pk, job.pk]
    first = body["results"][1]
    assert first["job_type"] == "fortune"
    assert first["status"] == "pending"
    assert first["points_used"] == 50
    assert first["input"] == {"q": "love?"}
    assert first["transaction_id"] == job.transaction_id


def test_jobs_filter_by_status(job, as_user):
    assert as_user.get(JOBS, {"status": "completed"}).json()["results"] == []
    assert len(as_user.get(JOBS, {"status": "pending"}).json()["results"]) == 1
    assert error_of(as_user.get(JOBS, {"status": "nope"})) == (400, "validation_error")


def test_job_detail_of_own_job(job, as_user):
    response = as_user.get(f"{JOBS}/{job.pk}")

    assert response.status_code == 200
    assert response.json()["id"] == job.pk


@pytest.mark.parametrize("suffix", ["their", "987654321", "99999999999999999999999", "x"])
def test_other_or_unknown_jobs_are_404(their_job, as_user, suffix):
    target = their_job.pk if suffix == "their" else suffix

    assert error_of(as_user.get(f"{JOBS}/{target}")) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", JOBS), ("get", f"{JOBS}/1"), ("post", f"{JOBS}/1/cancel"), ("get", JOB_TYPES)],
)
def test_job_endpoints_need_authentication(api_client, method, path):
    assert error_of(getattr(api_client, method)(path)) == (401, "not_authenticated")


def test_cancel_a_pending_job_refunds_it_fully(user, job, as_user):
    response = as_user.post(f"{JOBS}/{job.pk}/cancel")

    assert response.status_code == 200
    body = response.json()
    assert body["job"]["status"] == "cancelled"
    assert body["refund"]["type"] == "refund"
    assert body["refund"]["amount"] == 50
    assert body["refund"]["related_transaction_id"] == job.transaction_id
    assert "Idempotent-Replayed" not in response
    assert Wallet.objects.get(user=user).balance == 200
    assert_ledger_consistent()


def test_cancelling_twice_replays_and_refunds_once(user, job, as_user):
    first = as_user.post(f"{JOBS}/{job.pk}/cancel")
    before = ledger_snapshot()

    again = as_user.post(f"{JOBS}/{job.pk}/cancel")

    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["refund"] == first.json()["refund"]
    assert ledger_snapshot() == before
    assert Transaction.objects.filter(type="refund").count() == 1


@pytest.mark.parametrize(
    "status", [JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.REFUNDED]
)
def test_only_a_pending_job_can_be_cancelled(job, as_user, status):
    set_status(job, status)
    before = ledger_snapshot()

    response = as_user.post(f"{JOBS}/{job.pk}/cancel")

    assert error_of(response) == (409, "job_not_cancellable")
    assert ledger_snapshot() == before


def test_a_job_refunded_after_failing_is_not_cancellable(job, as_user):
    set_status(job, JobStatus.FAILED)
    services.refund_job(job_id=job.pk, reason="handler failed")  # the worker's refund
    before = ledger_snapshot()

    response = as_user.post(f"{JOBS}/{job.pk}/cancel")

    assert error_of(response) == (409, "job_not_cancellable")
    assert ledger_snapshot() == before


def test_cancelling_another_users_job_is_404_and_changes_nothing(their_job, as_user):
    before = ledger_snapshot()

    assert error_of(as_user.post(f"{JOBS}/{their_job.pk}/cancel")) == (404, "not_found")
    assert ledger_snapshot() == before
    assert Job.objects.get(pk=their_job.pk).status == "pending"


def test_cancel_ignores_a_body_trying_to_set_fields(job, as_user):
    response = as_user.post(
        f"{JOBS}/{job.pk}/cancel", {"status": "completed", "user_id": 1}, format="json"
    )

    assert response.status_code == 200
    assert Job.objects.get(pk=job.pk).status == "cancelled"


def test_cancel_is_post_only(job, as_user):
    assert error_of(as_user.get(f"{JOBS}/{job.pk}/cancel")) == (405, "method_not_allowed")


def test_job_types_lists_active_ones_with_prices(as_user):
    JobTypeFactory(code="tarot", name="Tarot", price=120)
    JobTypeFactory(code="closed", price=5, active=False)

    response = as_user.get(JOB_TYPES)

    assert response.status_code == 200
    assert response.json() == [
        {"code": "tarot", "name": "Tarot", "description": "", "price": 120},
    ]
