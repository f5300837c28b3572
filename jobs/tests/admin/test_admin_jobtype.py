"""Job type prices in the admin: finance staff edit them, support staff only read them,
and every price change is an audit event written in the same DB transaction."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditChainHead, AuditEvent
from jobs.models import JobType
from jobs.services import job_types
from wallet.tests.admin_helpers import logged_in, staff_in_group
from wallet.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(db):
    return staff_in_group("finance-agent", "finance")


def change_url(job_type: JobType) -> str:
    return reverse("admin:jobs_jobtype_change", args=[job_type.pk])


def form_data(job_type: JobType, **overrides) -> dict:
    data = {
        "name": job_type.name,
        "description": job_type.description,
        "price": str(job_type.price),
        "active": "on" if job_type.active else "",
        "confirm_price_change": "on",
    }
    data.update(overrides)
    return data


def price_events():
    return AuditEvent.objects.filter(action="jobtype.price_changed").order_by("id")


def test_finance_changes_a_price_and_it_is_audited(finance, job_type):
    response = logged_in(finance).post(change_url(job_type), form_data(job_type, price="65"))

    assert response.status_code == 302
    job_type.refresh_from_db()
    assert job_type.price == 65
    [event] = price_events()
    assert (event.actor, event.metadata) == (finance, {"code": "fortune", "old": 50, "new": 65})
    assert event.chain == "system"
    assert AuditChainHead.objects.get(name="system").head == event.hash


def test_two_changes_chain_old_to_new(finance, job_type):
    client = logged_in(finance)
    client.post(change_url(job_type), form_data(job_type, price="60"))
    job_type.refresh_from_db()
    client.post(change_url(job_type), form_data(job_type, price="45"))

    changes = [(e.metadata["old"], e.metadata["new"]) for e in price_events()]
    assert changes == [(50, 60), (60, 45)]
    second = price_events().last()
    assert second.prev_hash == price_events().first().hash
    # The job type page shows the history.
    page = client.get(change_url(job_type)).content.decode()
    assert "60 → 45 points by finance-agent</li>" in page
    assert "&lt;br&gt;" not in page and "History" not in page
    assert "audit-trail-link" in page


def test_a_price_change_needs_its_confirmation(finance, job_type):
    client = logged_in(finance)
    refused = client.post(
        change_url(job_type), form_data(job_type, price="75", confirm_price_change="")
    )
    assert refused.status_code == 200
    assert "The price changes from 50 to 75 points. It applies to the next purchase" in (
        refused.content.decode()
    )
    job_type.refresh_from_db()
    assert job_type.price == 50 and not price_events().exists()


def test_saving_without_a_price_change_writes_no_price_event(finance, job_type):
    logged_in(finance).post(change_url(job_type), form_data(job_type, name="Fortune (new)"))

    job_type.refresh_from_db()
    assert job_type.name == "Fortune (new)"
    assert not price_events().exists()


@pytest.mark.parametrize(
    ("price", "fragment"),
    [
        ("10.5", "whole number"),
        ("10.0", "whole number"),
        ("1e2", "whole number"),
        ("cheap", "whole number"),
        ("0", "at least 1"),
        ("-5", "at least 1"),
        ("", "required"),
        ("1000001", "at most 1,000,000 points"),
    ],
)
def test_invalid_price_is_a_form_error_and_changes_nothing(finance, job_type, price, fragment):
    response = logged_in(finance).post(change_url(job_type), form_data(job_type, price=price))

    assert response.status_code == 200
    assert any(fragment in error for error in response.context["adminform"].form.errors["price"])
    job_type.refresh_from_db()
    assert job_type.price == 50
    assert not price_events().exists()


def test_support_can_read_but_not_change_prices(job_type):
    client = logged_in(staff_in_group("support-agent", "support"))

    page = client.get(change_url(job_type))
    post = client.post(change_url(job_type), form_data(job_type, price="1"))

    assert page.status_code == 200
    assert 'name="price"' not in page.content.decode()
    assert post.status_code == 403
    job_type.refresh_from_db()
    assert job_type.price == 50
    assert not price_events().exists()


def test_job_types_cannot_be_deleted_from_the_admin(job_type):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)

    response = logged_in(root).post(
        reverse("admin:jobs_jobtype_delete", args=[job_type.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert JobType.objects.filter(pk=job_type.pk).exists()


def test_a_new_job_type_records_its_first_price(db):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)

    response = logged_in(root).post(
        reverse("admin:jobs_jobtype_add"),
        {"code": "runes", "name": "Rune casting", "description": "", "price": "75", "active": "on"},
    )

    assert response.status_code == 302
    [event] = price_events()
    assert event.metadata == {"code": "runes", "old": None, "new": 75}


def test_price_and_audit_event_commit_together(finance, job_type, monkeypatch):
    """If the audit event cannot be written, the price change does not happen either."""

    def broken(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(job_types, "record_system_event", broken)
    job_type.price = 99

    with pytest.raises(RuntimeError):
        job_types.save_job_type(job_type=job_type, actor=finance)

    assert JobType.objects.get(pk=job_type.pk).price == 50
    assert not price_events().exists()


@pytest.mark.parametrize("price", [0, -1, 1.5, "10", True, None])
def test_service_refuses_a_price_that_is_not_a_positive_whole_number(finance, job_type, price):
    from divine_whispers.errors import ValidationFailed

    job_type.price = price

    with pytest.raises(ValidationFailed):
        job_types.save_job_type(job_type=job_type, actor=finance)

    assert JobType.objects.get(pk=job_type.pk).price == 50
