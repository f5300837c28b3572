"""The back-office's honest labels (Django test client): a partial refund reads as one on
the spend, the job page and the job list filter; approvals' decided pages and queue;
what a list reached from a record is filtered to; the words of refusals."""

from __future__ import annotations

import pytest

from jobs.models import Job
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.tests.admin_helpers import logged_in, staff_in_group
from wallet.tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def partial():
    """alice spends 120 on a tarot reading; support refunds 30 of it."""
    cashier = StaffFactory(username="cashier")
    alice = UserFactory(username="alice")
    tarot = JobTypeFactory(code="tarot", name="Three-card tarot", price=120)
    services.deposit(user=alice, amount=1000, reference_id="pay-1", actor=cashier)
    spend = services.spend(user=alice, job_type=tarot, reference_id="order-1").transaction
    services.refund(spend_txn=spend, amount=30, reason="late", actor=cashier)
    full = services.spend(user=alice, job_type=tarot, reference_id="order-2").transaction
    services.refund(spend_txn=full, reason="wrong reading", actor=cashier)
    return {"spend": spend, "full": full, "job": Job.objects.get(transaction=spend)}


def test_a_partial_refund_reads_as_partial_on_the_spend_and_the_job(partial):
    client = logged_in(staff_in_group("sup", "support"))
    spend_page = client.get(f"/admin/wallet/transaction/{partial['spend'].pk}/change/")
    html = spend_page.content.decode()
    assert "Partially refunded (30 of 120)" in html
    job = partial["job"]
    job_page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert f"Job #{job.pk} Three-card tarot (partially refunded (30 of 120))" in job_page
    assert "Partially refunded (30 of 120)" in job_page
    full_page = client.get(f"/admin/wallet/transaction/{partial['full'].pk}/change/")
    assert "Refunded in full (120 of 120)" in full_page.content.decode()


def test_the_job_list_filter_tells_full_from_partial_refunds(partial):
    client = logged_in(staff_in_group("sup", "support"))
    listing = client.get("/admin/jobs/job/").content.decode()
    assert "Partially refunded (30 of 120)" in listing
    assert "Refunded in full" in listing and "Partially refunded</a>" in listing
    partial_only = client.get("/admin/jobs/job/", {"status": "partial"})
    assert [job.pk for job in partial_only.context["cl"].result_list] == [partial["job"].pk]
    full_only = client.get("/admin/jobs/job/", {"status": "refunded"})
    assert [job.transaction_id for job in full_only.context["cl"].result_list] == [
        partial["full"].pk
    ]
