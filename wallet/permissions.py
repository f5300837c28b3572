"""Every permission the wallet checks, named once, with what it allows.

The API's permission classes, the admin's buttons and pages, and the services' own checks
all read these names, so a right can never be spelled two ways. Which group holds which
right is decided by data migrations (`support`, `finance`); the payment service account
holds `DEPOSIT` alone.
"""

from __future__ import annotations

# POST /api/v1/wallet/deposit: credit points for a payment taken outside the provider.
DEPOSIT = "wallet.deposit_points"
# PUT /api/v1/admin/users/{id}/points and the admin's adjust flow: book or request an adjustment.
ADJUST = "wallet.adjust_points"
# POST /api/v1/admin/users/{id}/grants and the admin's grant page: grant promotional points.
GRANT = "wallet.grant_points"
# Decide (approve or reject) another staff member's adjustment request.
APPROVE = "wallet.approve_adjustment"
# Refund a spend (full or partial), in the admin and through the API.
REFUND = "wallet.refund_transaction"
# Refund a purchase's money through the payment provider (admin), clawing its points back.
REFUND_PURCHASE = "wallet.refund_purchase"
# Read wallets (GET /api/v1/admin/wallets, the admin's wallet pages).
VIEW_WALLET = "wallet.view_wallet"
# Read ledger rows in the admin (the customer timeline's money rows).
VIEW_TRANSACTION = "wallet.view_transaction"
# The daily finance report (API and admin page).
VIEW_REPORT = "wallet.view_report"
# Issue and revoke API keys in the admin.
ADD_API_KEY = "wallet.add_apitoken"

# Rights of other apps that the wallet's pages check before linking to them.
VIEW_JOB = "jobs.view_job"
VIEW_AUDIT_EVENT = "audit.view_auditevent"
