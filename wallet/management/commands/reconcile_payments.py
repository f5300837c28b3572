"""`manage.py reconcile_payments --since 3d`: the provider's payments and refunds compared
with the ledger (wallet/services/reconciliation.py).

Credits every paid purchase the webhook never credited (through the webhook's own
fulfilment function), and reports every credit the provider does not call paid and every
refund not clawed back. Findings are an audit event and the gauge
`divine_whispers_payment_reconciliation_findings` (read from that event at each scrape).
Exit codes: 0 no finding; 1 findings; 2 bad arguments; 3 database error; 4 provider down.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from divine_whispers import durations
from divine_whispers.errors import ProviderUnavailable
from wallet import services


class Command(BaseCommand):
    help = "Compare the provider's payments and refunds since --since (e.g. 3d) with the ledger."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", default="3d", help="How far back: 90s, 15m, 2h, 3d.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            since = timezone.now() - durations.parse_duration(options["since"])
        except ValueError as exc:
            raise CommandError(f"--since {exc}", returncode=2) from exc
        try:
            report = services.reconcile_payments(since=since)
        except ProviderUnavailable as exc:
            raise CommandError(f"the payment provider did not answer: {exc}", returncode=4) from exc
        except DatabaseError as exc:
            raise CommandError(f"reconcile_payments could not run: {exc}", returncode=3) from exc
        self.stdout.write(
            f"Checked {report.checked} purchase(s) since {since:%Y-%m-%d %H:%M}; "
            f"credited {len(report.credited)}: {', '.join(report.credited) or '-'}."
        )
        for finding in report.findings:
            self.stdout.write(f"FINDING {finding.kind} {finding.payment_id}: {finding.detail}")
        if report.findings:
            raise CommandError(f"{len(report.findings)} finding(s)", returncode=1)
