"""The finance report's proxy model: a place in the admin and a permission, no table.

The report's figures are read queries (wallet/selectors/reports.py `daily_report`).
"""

from __future__ import annotations

from wallet.models.ledger import Transaction, codename
from wallet.permissions import VIEW_REPORT


class FinanceReport(Transaction):
    """No table of its own: the ledger, seen as the finance report (its admin page and API).

    It exists to give the report its place in the admin and its permission,
    `wallet.view_report` (group finance), which the API checks too.
    """

    class Meta:
        proxy = True
        verbose_name = "finance report"
        verbose_name_plural = "finance report"
        default_permissions = ()
        permissions = [(codename(VIEW_REPORT), "Can view the daily finance report")]
