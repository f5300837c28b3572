"""Bulk grants from a CSV in the wallet admin: the summary books nothing, the
confirmation books each good row once by its reference, a second upload replays, a bad
row is reported while the others proceed, the uploader's own row is refused."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from wallet.models import ApprovalRequest, Lot, Transaction, TransactionType
from wallet.tests.admin_helpers import logged_in, staff_in_group
from wallet.tests.factories import UserFactory
from wallet.tests.helpers import assert_ledger_consistent

pytestmark = pytest.mark.django_db

UPLOAD = "/admin/wallet/wallet/bulk-grant/"
CONFIRM = "/admin/wallet/wallet/bulk-grant/confirm/"


@pytest.fixture
def finance(db):
    return staff_in_group("finance-agent", "finance")


@pytest.fixture
def people(db):
    return UserFactory(username="alice"), UserFactory(username="bob")


def upload(client, text: str):
    return client.post(UPLOAD, {"file": SimpleUploadedFile("grants.csv", text.encode())})


def token_of(response) -> str:
    found = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    assert found, response.content.decode()
    return found.group(1)


def statuses(response) -> list[str]:
    return re.findall(r'data-status="([^"]+)"', response.content.decode())


def grants() -> int:
    return Transaction.objects.filter(type=TransactionType.GRANT).count()


def good_file(bob_id: int) -> str:
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    return (
        "username,user_id,amount,reason,expires_at,campaign,reference\n"
        f"alice,,100,Welcome,{expires},spring,bulk-1\n"
        f",{bob_id},250,Goodwill,,,bulk-2\n"
    )


def test_summary_books_nothing_and_confirm_books_each_row_once(finance, people):
    alice, bob = people
    client = logged_in(finance)
    file = good_file(bob.pk)
    summary = upload(client, file)
    assert summary.status_code == 200
    text = summary.content.decode()
    assert "2 rows: 2 to book, 350 points in all; 0 with problems" in text
    assert grants() == 0 and Lot.objects.filter(kind="promotional").count() == 0

    done = client.post(CONFIRM, {"token": token_of(summary)})
    assert done.status_code == 200
    assert statuses(done) == ["booked", "booked"]
    assert "its own transaction" in done.content.decode()
    alice_lot = Lot.objects.get(wallet__user=alice, kind="promotional")
    assert (alice_lot.amount, alice_lot.campaign) == (100, "spring")
    assert alice_lot.expires_at is not None
    assert Lot.objects.get(wallet__user=bob, kind="promotional").expires_at is None
    assert grants() == 2

    # The same confirmation again (Back + resubmit) and the same file uploaded again:
    # every row replays, nothing new is booked.
    assert statuses(client.post(CONFIRM, {"token": token_of(summary)})) == ["replayed"] * 2
    again = upload(client, file)
    replayed = client.post(CONFIRM, {"token": token_of(again)})
    assert statuses(replayed) == ["replayed", "replayed"]
    assert "replayed: 2" in replayed.content.decode()
    assert grants() == 2
    assert_ledger_consistent()


def test_bad_rows_are_reported_and_the_others_proceed(finance, people):
    client = logged_in(finance)
    past = (timezone.now() - timedelta(days=1)).isoformat()
    summary = upload(
        client,
        "username,amount,reason,reference,expires_at\n"
        "alice,50,Welcome,r-1,\n"
        "nobody,50,Welcome,r-2,\n"
        "bob,-5,Welcome,r-3,\n"
        "bob,1.5,Welcome,r-4,\n"
        "bob,40,,r-5,\n"
        "bob,40,Welcome,,\n"
        "bob,40,Welcome,r-1,\n"
        "bob,40,Welcome,r-8,not-a-date\n"
        f"bob,40,Welcome,r-9,{past}\n"
        "bob,99999999999999999999,Welcome,r-10,\n"
        "bob,30,Sorry,r-11,\n",
    )
    text = summary.content.decode()
    assert "11 rows: 2 to book, 80 points in all; 9 with problems" in text
    for problem in (
        "unknown user &#x27;nobody&#x27;",
        "is not a whole number",
        "reason is required",
        "reference is required",
        "repeats line 2",
        "is not an ISO date-time",
        "must be in the future",
    ):
        assert problem in text, problem
    assert grants() == 0

    done = client.post(CONFIRM, {"token": token_of(summary)})
    assert statuses(done) == ["booked"] + ["not booked"] * 9 + ["booked"]
    assert grants() == 2
    assert_ledger_consistent()


def test_unknown_user_ids_of_any_size_are_row_problems(finance, people):
    client = logged_in(finance)
    summary = upload(
        client,
        "user_id,amount,reason,reference\n"
        "99999999999999999999,10,W,u-1\n"
        "987654,10,W,u-2\n"
        "-3,10,W,u-3\n"
        f"{people[0].pk},10,W,u-4\n",
    )
    assert summary.status_code == 200
    assert "4 rows: 1 to book, 10 points in all; 3 with problems" in summary.content.decode()
    assert statuses(client.post(CONFIRM, {"token": token_of(summary)})) == (
        ["not booked"] * 3 + ["booked"]
    )


def test_the_uploaders_own_row_is_refused_and_the_others_booked(finance, people):
    client = logged_in(finance)
    summary = upload(
        client,
        "username,amount,reason,reference\n"
        "alice,10,Welcome,s-1\n"
        f"{finance.username},10,For me,s-2\n"
        "bob,10,Welcome,s-3\n",
    )
    done = client.post(CONFIRM, {"token": token_of(summary)})
    assert statuses(done) == ["booked", "refused", "booked"]
    assert "self_dealing_forbidden" in done.content.decode()
    assert grants() == 2
    assert not Transaction.objects.filter(wallet__user=finance).exists()


def test_a_row_past_the_threshold_becomes_an_approval_request(finance, people, settings):
    settings.WALLET_APPROVAL_THRESHOLD = 1000
    client = logged_in(finance)
    summary = upload(client, "username,amount,reason,reference\nalice,5000,Big,a-1\n")
    done = client.post(CONFIRM, {"token": token_of(summary)})
    assert statuses(done) == ["approval requested"]
    assert ApprovalRequest.objects.count() == 1 and grants() == 0
    assert statuses(client.post(CONFIRM, {"token": token_of(summary)})) == ["approval replayed"]


def test_file_problems_and_bad_tokens_book_nothing(finance, people):
    client = logged_in(finance)
    missing = upload(client, "username,amount\nalice,10\n")
    assert missing.status_code == 400
    assert "Missing column(s): reason, reference." in missing.content.decode()
    binary = client.post(UPLOAD, {"file": SimpleUploadedFile("g.csv", b"user\xff,amount\n")})
    assert binary.status_code == 400 and "not UTF-8" in binary.content.decode()
    forged = client.post(CONFIRM, {"token": "forged"})
    assert "not valid" in forged.content.decode() and grants() == 0
    # Another staff member cannot use my confirmation.
    summary = upload(client, "username,amount,reason,reference\nalice,10,W,t-1\n")
    other = logged_in(staff_in_group("finance-2", "finance"))
    assert (
        "another staff member" in other.post(CONFIRM, {"token": token_of(summary)}).content.decode()
    )
    assert grants() == 0


def test_support_cannot_bulk_grant_and_finance_sees_the_link(finance):
    support = logged_in(staff_in_group("support-agent", "support"))
    assert support.get(UPLOAD).status_code == 403
    assert support.post(CONFIRM, {"token": "x"}).status_code == 403
    assert b"bulk-grant-link" not in support.get("/admin/wallet/wallet/").content
    assert b"bulk-grant-link" in logged_in(finance).get("/admin/wallet/wallet/").content
