"""Reconciliation: the provider's payments and refunds compared with the ledger.

For every purchase started since a moment (each has its PaymentIntent id, so our own rows
list every payment we asked for), the PaymentIntent and its charge are re-read from the
provider: a paid purchase never credited is credited now, through `fulfil_purchase` (the
webhook's own function, so a webhook racing it still credits once); a credit the provider
does not report paid, a `purchase` row with no purchase, and refunded money not clawed
back are findings (reported, never "fixed" by guessing). Every run writes an audit event
(`payments.reconciled`, with its findings), which the metrics gauge reads.

Part of the wallet.services package (see its __init__).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Sum

from audit.services import record_system_event
from wallet.models import Clawback, ClawbackKind, Purchase, Transaction, TransactionType
from wallet.selectors import RECONCILED_ACTION
from wallet.services import _provider, purchases


@dataclass
class Finding:
    kind: str  # credited_but_not_paid | refunded_but_not_clawed_back | credit_without_purchase
    payment_id: str
    detail: str


@dataclass
class Reconciliation:
    checked: int = 0
    credited: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _check_purchase(purchase: Purchase, report: Reconciliation) -> None:
    payment = _provider.fetch_payment(purchase.provider_payment_id)
    if payment.status == "succeeded" and purchase.credit_id is None:
        result = purchases.fulfil_purchase(payment=payment)
        if not result.replayed:
            report.credited.append(payment.id)
        purchase = result.purchase
    elif purchase.credit_id is not None and payment.status != "succeeded":
        report.findings.append(
            Finding("credited_but_not_paid", payment.id, f"provider status {payment.status}")
        )
        return
    if purchase.credit_id is None or not payment.charge_id:
        return
    charge = _provider.fetch_charge(payment.charge_id)
    refunded = sum(r.amount for r in charge.refunds if r.status in ("succeeded", "pending"))
    clawed = (
        Clawback.objects.filter(
            purchase=purchase, kind=ClawbackKind.REFUND, reversed=False
        ).aggregate(m=Sum("money"))["m"]
        or 0
    )
    if clawed < refunded:
        report.findings.append(
            Finding(
                "refunded_but_not_clawed_back",
                payment.id,
                f"provider refunded {refunded}, clawed back for {clawed}",
            )
        )


def _orphan_credits(since: datetime, report: Reconciliation) -> None:
    """`purchase` rows no purchase points at: a credit nobody asked the provider for."""
    orphans = Transaction.objects.filter(
        type=TransactionType.PURCHASE, created_at__gte=since, purchase__isnull=True
    ).values_list("reference_id", flat=True)
    for payment_id in orphans:
        report.findings.append(
            Finding("credit_without_purchase", payment_id or "", "no purchase for this credit")
        )


def reconcile_payments(*, since: datetime) -> Reconciliation:
    report = Reconciliation()
    started = Purchase.objects.filter(
        created_at__gte=since, provider_payment_id__isnull=False
    ).order_by("id")
    # Ids first: each check books in its own transaction, never inside an open cursor.
    for purchase_id in list(started.values_list("id", flat=True)):
        purchase = Purchase.objects.get(pk=purchase_id)
        report.checked += 1
        try:
            _check_purchase(purchase, report)
        except purchases.PaymentMismatch as exc:
            report.findings.append(
                Finding("payment_mismatch", purchase.provider_payment_id, str(exc))
            )
        except _provider.ProviderRefused as exc:
            report.findings.append(
                Finding("unknown_payment", purchase.provider_payment_id, str(exc))
            )
    _orphan_credits(since, report)
    record_system_event(
        action=RECONCILED_ACTION,
        metadata={
            "since": since.isoformat(),
            "checked": report.checked,
            "credited": report.credited[:100],
            "findings": [f.__dict__ for f in report.findings][:100],
        },
    )
    return report
