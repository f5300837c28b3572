"""The wallet's back-office: one module per page or flow.

Django's admin autodiscovery imports `wallet.admin`; importing the page modules here
registers their ModelAdmins: wallets (with the timeline and the adjust flow),
transactions (with the refund flow), four-eyes approvals, the finance report, API keys,
and buying points (packages, purchases, the provider's webhook inbox).
The flows' shared parts are `staff_flow`, `confirmations` and `forms`; what the wallet,
jobs and audit admins share is the kit in `audit.backoffice`.
"""

from django.contrib import admin

from wallet.admin import (  # noqa: F401
    api_keys,
    approvals,
    purchases,
    reports,
    transactions,
    wallets,
)

# The home page, with the count of approval requests waiting (wallet/admin/home.py).
admin.site.index_template = "admin/wallet/index.html"
