"""`manage.py bootstrap --from FILE`: the example file works, a second run changes nothing,
a bad file writes nothing, and the service account's key authenticates."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from jobs.models import JobType
from wallet.models import ApiToken, PointPackage

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "bootstrap.example.toml"
pytestmark = pytest.mark.django_db


@pytest.fixture
def passwords(monkeypatch):
    monkeypatch.setenv("DW_ADMIN_PASSWORD", "a-long-admin-password-for-tests")
    monkeypatch.setenv("DW_ANN_PASSWORD", "a-long-ann-password-for-tests")


def bootstrap(path: Path | str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("bootstrap", "--from", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def snapshot() -> dict:
    User = get_user_model()
    return {
        "users": sorted(
            (
                u.username,
                u.is_staff,
                u.is_superuser,
                u.password,
                tuple(sorted(u.groups.values_list("name", flat=True))),
            )
            for u in User.objects.all()
        ),
        "job_types": sorted(JobType.objects.values_list("code", "name", "price", "active")),
        "tokens": sorted(ApiToken.objects.values_list("pk", "user__username", "name")),
        "audit_events": AuditEvent.objects.count(),
    }


def test_the_example_file_creates_everything_and_prints_one_key(passwords, api_client):
    out, _err = bootstrap(EXAMPLE)
    User = get_user_model()
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("a-long-admin-password-for-tests")
    ann = User.objects.get(username="ann")
    assert (
        ann.is_staff
        and not ann.is_superuser
        and ann.check_password("a-long-ann-password-for-tests")
    )
    assert list(ann.groups.values_list("name", flat=True)) == ["finance"]
    assert not User.objects.get(username="ben").has_usable_password()
    assert User.objects.get(username="sam").has_perm("wallet.refund_transaction")
    assert sorted(JobType.objects.values_list("code", "price")) == [
        ("fortune", 50),
        ("horoscope", 20),
        ("tarot", 120),
    ]
    # The first price of each job type is audited like any price change.
    assert AuditEvent.objects.filter(action="jobtype.price_changed").count() == 3
    lines = out.splitlines()
    assert len(lines) == 1, out
    username, name, key = lines[0].split(" ")
    assert (username, name, len(key)) == ("payments", "psp", 64)
    assert sorted(PointPackage.objects.values_list("code", "points", "price")) == [
        ("seeker", 1200, 999),
        ("starter", 500, 499),
    ]
    payments = User.objects.get(username="payments")
    # Not staff, in no group, holding the deposit right alone (minting controls).
    assert not payments.is_staff and not payments.groups.exists()
    assert payments.has_perm("wallet.deposit_points")
    # The key is the payment service's: it may deposit.
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    alice = User.objects.create_user("alice")
    answer = api_client.post(
        "/api/v1/wallet/deposit",
        {"user_id": alice.pk, "amount": 500, "reference_id": "psp-ch-1"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    token = ApiToken.objects.get(user__username="payments")
    assert 364 <= (token.expiry - token.created).days <= 365


def test_a_second_run_changes_nothing_and_issues_no_key(passwords):
    bootstrap(EXAMPLE)
    before = snapshot()
    out, err = bootstrap(EXAMPLE)
    assert out == ""
    assert "bootstrap: 0 change(s)" in err
    assert snapshot() == before


def test_an_existing_job_type_is_reported_not_overwritten(passwords, tmp_path):
    JobType.objects.create(code="fortune", name="Fortune", price=70)
    _out, err = bootstrap(EXAMPLE)
    assert JobType.objects.get(code="fortune").price == 70
    assert "job type fortune: exists, left unchanged although it differs: " in err
    assert "price 70 (file: 50)" in err


def test_groups_are_added_never_removed(passwords):
    from django.contrib.auth.models import Group

    ann = get_user_model().objects.create_user("ann", password="kept-password-123")
    ann.groups.add(Group.objects.get(name="support"))
    _out, err = bootstrap(EXAMPLE)
    ann.refresh_from_db()
    assert sorted(ann.groups.values_list("name", flat=True)) == ["finance", "support"]
    assert ann.check_password("kept-password-123")  # never reset
    assert "staff ann: exists, added to finance" in err


def test_an_expired_key_is_replaced(passwords):
    from django.utils import timezone

    bootstrap(EXAMPLE)
    ApiToken.objects.filter(name="psp").update(expiry=timezone.now())
    out, _err = bootstrap(EXAMPLE)
    assert out.startswith("payments psp ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[staff]]\nusername = 'x'\ngroups = ['nope']\n", "no group nope"),
        ("[[staff]]\nusername = 'x'\npassword_env = 'DW_UNSET_VARIABLE'\n", "DW_UNSET_VARIABLE"),
        ("[[job_types]]\ncode = 'a'\nname = 'A'\nprice = 0\n", "price must be a positive"),
        ("[[job_types]]\ncode = 'a'\nname = 'A'\nprice = 1.5\n", "price must be a positive"),
        ("[[job_types]]\ncode = 'a'\nname = 'A'\nprice = true\n", "price must be a positive"),
        ("[[job_types]]\ncode = 'a b'\nname = 'A'\nprice = 5\n", "code 'a b'"),
        ("[[job_types]]\ncode = 'a'\nprice = 5\n", "missing name"),
        ("[[job_types]]\ncode = 'a'\nname = 'A'\nprice = 5\ncolour = 1\n", "unknown key(s) colour"),
        ("[wallets]\n", "unknown section(s) wallets"),
        ("[[staff]]\nusername = 'x'\n[[staff]]\nusername = 'x'\n", "declared twice"),
        ("[[service_accounts]]\nusername = 'p'\nkey_expires_in = 'soon'\n", "key_expires_in"),
        ("not toml = = =\n", "not valid TOML"),
        ("[superuser]\nusername = 'alice'\n", "exists and is not a superuser"),
    ],
)
def test_a_bad_file_writes_nothing(tmp_path, text, message):
    get_user_model().objects.create_user("alice")
    # A valid entry first: it must be rolled back with the refused one.
    path = tmp_path / "plan.toml"
    path.write_text(
        "[[job_types]]\ncode = 'first'\nname = 'First'\nprice = 5\n" + text
        if text.startswith("[[staff]]") or text.startswith("[superuser]")
        else text
    )
    before = snapshot()
    with pytest.raises(CommandError, match="nothing written") as caught:
        bootstrap(path)
    assert message in str(caught.value)
    assert caught.value.returncode == 2
    assert snapshot() == before


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        bootstrap(tmp_path / "absent.toml")


def test_declared_packages_are_created_once_with_an_audited_price(tmp_path):
    from wallet.models import PointPackage

    path = tmp_path / "plan.toml"
    path.write_text("[[packages]]\ncode = 'starter'\nname = 'Starter'\npoints = 500\nprice = 499\n")
    _out, err = bootstrap(path)
    assert "package starter: created" in err
    package = PointPackage.objects.get(code="starter")
    assert (package.points, package.price, package.currency) == (500, 499, "usd")
    assert AuditEvent.objects.filter(action="package.price_changed").count() == 1
    _out, err = bootstrap(path)
    assert "package starter: exists, unchanged" in err and "0 change(s)" in err
    assert AuditEvent.objects.filter(action="package.price_changed").count() == 1
