"""The back-office pages: lists and searches load for support staff, detail pages link
related records, and ledger, audit and job rows cannot be added, changed or deleted."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.models import AuditEvent
from jobs.models import Job
from wallet import services
from wallet.models import Transaction, TransactionType, Wallet
from wallet.tests.admin_helpers import logged_in, staff_in_group
from wallet.tests.factories import UserFactory
from wallet.tests.helpers import ledger_snapshot

pytestmark = pytest.mark.django_db

SUPPORT_RIGHTS = {
    "wallet.view_wallet",
    "wallet.view_transaction",
    "wallet.refund_transaction",
    "audit.view_auditevent",
    "jobs.view_job",
    "jobs.view_jobtype",
    "wallet.view_purchase",
    "wallet.view_providerevent",
    "wallet.view_clawback",
}
# No `wallet.deposit_points`: the payment service account's alone (migration 0013_minting_controls).
FINANCE_RIGHTS = SUPPORT_RIGHTS | {
    "wallet.grant_points",
    "wallet.refund_purchase",
    "wallet.view_pointpackage",
    "wallet.add_pointpackage",
    "wallet.change_pointpackage",
    "wallet.change_providerevent",
    "wallet.adjust_points",
    "jobs.change_jobtype",
    "wallet.approve_adjustment",
    "wallet.view_report",
}
LEDGER_MODELS = [
    ("wallet", "wallet"),
    ("wallet", "transaction"),
    ("audit", "auditevent"),
    ("jobs", "job"),
]


@pytest.fixture
def support(db):
    return staff_in_group("support-agent", "support")


@pytest.fixture
def history(user, other_user, fund, job_type, staff):
    """One of each kind of ledger row for `user` (named 'carol' to search for)."""
    user.username, user.email = "carol", "carol@example.com"
    user.save()
    fund(user, 500)
    spend, job = services.spend(user=user, job_type=job_type, reference_id="order-777")
    refund = services.refund(spend_txn=spend, amount=10, reason="late", actor=staff).transaction
    transfer = services.transfer(sender=user, recipient=other_user, amount=25)
    adjustment = services.adjust(user=user, amount=-5, reason="typo fix", actor=staff).transaction
    return {
        "spend": spend,
        "job": job,
        "refund": refund,
        "debit": transfer.debit,
        "credit": transfer.credit,
        "adjustment": adjustment,
        "wallet": Wallet.objects.get(user=user),
    }


def test_groups_hold_exactly_the_contracts_rights():
    def rights(name: str) -> set[str]:
        group = Group.objects.get(name=name)
        return {
            f"{app_label}.{codename}"
            for app_label, codename in group.permissions.values_list(
                "content_type__app_label", "codename"
            )
        }

    assert rights("support") == SUPPORT_RIGHTS
    assert rights("finance") == FINANCE_RIGHTS


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("wallet_wallet", "q=carol"),
        ("wallet_wallet", "q=carol%40example.com"),
        ("wallet_transaction", "q=carol&type__exact=spend"),
        ("wallet_transaction", "q=order-777"),
        ("wallet_transaction", "status__exact=success&created_at__gte=2000-01-01T00:00:00%2B00:00"),
        ("jobs_job", "q=carol&status__exact=refunded"),
        ("jobs_jobtype", "q=fortune"),
        ("audit_auditevent", "q=carol&action=wallet.refund"),
    ],
)
def test_support_can_list_and_search(support, history, model, query):
    response = logged_in(support).get(reverse(f"admin:{model}_changelist") + "?" + query)

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("term", ["abc", "12abc", "'", '"', "%", "9" * 40, "ü"])
def test_odd_search_terms_never_fail(support, history, term):
    client = logged_in(support)
    for model in ("wallet_wallet", "wallet_transaction", "jobs_job", "audit_auditevent"):
        response = client.get(reverse(f"admin:{model}_changelist"), {"q": term})
        assert response.status_code == 200, model


def test_search_by_transaction_id(support, history):
    spend = history["spend"]
    response = logged_in(support).get(
        reverse("admin:wallet_transaction_changelist"), {"q": str(spend.pk)}
    )

    assert spend in response.context["cl"].result_list


def test_transaction_list_filters_by_type(support, history):
    response = logged_in(support).get(
        reverse("admin:wallet_transaction_changelist"), {"type__exact": "refund"}
    )

    assert list(response.context["cl"].result_list) == [history["refund"]]


def page_of(client, obj) -> str:
    opts = obj._meta
    response = client.get(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    )
    assert response.status_code == 200
    return response.content.decode()


def url_of(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def test_refund_and_spend_link_each_other(support, history):
    client = logged_in(support)

    assert url_of(history["spend"]) in page_of(client, history["refund"])
    assert url_of(history["refund"]) in page_of(client, history["spend"])


def test_transfer_pair_link_each_other(support, history):
    client = logged_in(support)

    assert url_of(history["credit"]) in page_of(client, history["debit"])
    assert url_of(history["debit"]) in page_of(client, history["credit"])


def test_job_and_its_spend_link_each_other(support, history):
    client = logged_in(support)

    assert url_of(history["spend"]) in page_of(client, history["job"])
    assert url_of(history["job"]) in page_of(client, history["spend"])


def test_wallet_page_links_its_transactions_and_shows_recent_activity(support, history):
    wallet = history["wallet"]

    page = page_of(logged_in(support), wallet)

    filtered = reverse("admin:wallet_transaction_changelist") + f"?wallet__id__exact={wallet.pk}"
    assert filtered in page
    assert 'id="recent-transactions"' in page and 'id="recent-jobs"' in page
    for key in ("spend", "refund", "debit", "adjustment"):
        assert url_of(history[key]) in page
    assert url_of(history["job"]) in page
    # Every ledger row page links back to its wallet.
    assert url_of(wallet) in page_of(logged_in(support), history["adjustment"])


def test_wallet_changelist_filtered_by_wallet_lists_only_its_rows(support, history):
    wallet = history["wallet"]
    response = logged_in(support).get(
        reverse("admin:wallet_transaction_changelist"), {"wallet__id__exact": wallet.pk}
    )

    assert {txn.wallet_id for txn in response.context["cl"].result_list} == {wallet.pk}
    assert response.context["cl"].result_count == 5


def test_wallet_page_shows_a_bounded_number_of_recent_rows(support, user, fund):
    for _ in range(23):
        fund(user, 1)
    wallet = Wallet.objects.get(user=user)

    response = logged_in(support).get(url_of(wallet))

    recent = response.context["recent_transactions"]
    assert len(recent) == 20
    assert recent == list(Transaction.objects.filter(wallet=wallet)[:20])  # newest first


def test_audit_event_page_links_wallet_and_transaction(support, history):
    event = AuditEvent.objects.get(transaction=history["refund"])

    page = page_of(logged_in(support), event)

    assert url_of(history["wallet"]) in page and url_of(history["refund"]) in page


def test_every_detail_page_renders_for_each_kind_of_row(support, history):
    client = logged_in(support)
    for obj in [*history.values(), *AuditEvent.objects.all(), *Job.objects.all()]:
        page_of(client, obj)


@pytest.mark.parametrize(("app_label", "model_name"), LEDGER_MODELS)
def test_ledger_rows_cannot_be_added_changed_or_deleted_even_by_a_superuser(
    history, app_label, model_name
):
    admin_user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = logged_in(admin_user)
    model = {
        "wallet": Wallet,
        "transaction": Transaction,
        "auditevent": AuditEvent,
        "job": Job,
    }[model_name]
    obj = model.objects.order_by("id").first()
    base = f"admin:{app_label}_{model_name}"
    before = ledger_snapshot()
    before_amounts = list(Transaction.objects.order_by("id").values_list("amount", "status"))

    add = client.post(reverse(f"{base}_add"), {"amount": "999", "balance": "999"})
    change = client.post(
        reverse(f"{base}_change", args=[obj.pk]),
        {"amount": "999", "balance": "999", "status": "failed", "balance_after": "1"},
    )
    delete = client.post(reverse(f"{base}_delete", args=[obj.pk]), {"post": "yes"})
    bulk = client.post(
        reverse(f"{base}_changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
    )
    page = client.get(reverse(f"{base}_change", args=[obj.pk])).content.decode()

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert bulk.status_code in (200, 302)
    after = ledger_snapshot()
    assert {**after, "audit": 0} == {**before, "audit": 0}
    # The three refusals are audited (admin.permission_denied), nothing else was written.
    denied = AuditEvent.objects.filter(action="admin.permission_denied")
    assert after["audit"] - before["audit"] == denied.count() == 3
    assert sorted(event.metadata["permission"] for event in denied) == sorted(
        f"{app_label}.{verb}_{model_name}" for verb in ("add", "change", "delete")
    )
    assert list(Transaction.objects.order_by("id").values_list("amount", "status")) == (
        before_amounts
    )
    assert 'name="_save"' not in page
    assert reverse(f"{base}_delete", args=[obj.pk]) not in page


def test_no_money_field_is_a_form_input(history):
    """Even for a superuser, the ledger pages render every field read-only."""
    admin_user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = logged_in(admin_user)
    for obj in (history["wallet"], history["spend"], history["job"]):
        page = page_of(client, obj)
        for name in ("balance", "amount", "status", "balance_after", "points_used"):
            assert f'name="{name}"' not in page, (obj, name)


def test_search_combined_with_a_type_filter(support, history):
    response = logged_in(support).get(
        reverse("admin:wallet_transaction_changelist"),
        {"q": "carol", "type__exact": TransactionType.SPEND},
    )

    assert list(response.context["cl"].result_list) == [history["spend"]]
