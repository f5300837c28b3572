"""The versioned REST API (`/api/v1/`): one router, the contract's table of endpoints."""

from rest_framework.routers import SimpleRouter

from jobs.api.views import JobTypeViewSet, JobViewSet
from wallet.api.reports import AdminReportViewSet
from wallet.api.views import (
    AdminApprovalViewSet,
    AdminTransactionViewSet,
    AdminUserViewSet,
    AdminWalletViewSet,
    TransactionViewSet,
    WalletViewSet,
)

router = SimpleRouter(trailing_slash=False)
router.register("wallet/transactions", TransactionViewSet, basename="transaction")
router.register("wallet", WalletViewSet, basename="wallet")
router.register("jobs", JobViewSet, basename="job")
router.register("job-types", JobTypeViewSet, basename="job-type")
router.register("admin/users", AdminUserViewSet, basename="admin-user")
router.register("admin/wallets", AdminWalletViewSet, basename="admin-wallet")
router.register("admin/transactions", AdminTransactionViewSet, basename="admin-transaction")
router.register("admin/approvals", AdminApprovalViewSet, basename="admin-approval")
router.register("admin/reports", AdminReportViewSet, basename="admin-report")

urlpatterns = router.urls
