"""The wallet's endpoints under `/api/v1/`: the customer's wallet, buying points, and the
staff's tools."""

from rest_framework.routers import SimpleRouter

from wallet.api.customer import TransactionViewSet, WalletViewSet
from wallet.api.grants import AdminGrantViewSet
from wallet.api.purchases import PackageViewSet, PurchaseViewSet
from wallet.api.reports import AdminReportViewSet
from wallet.api.staff import (
    AdminApprovalViewSet,
    AdminTransactionViewSet,
    AdminUserViewSet,
    AdminWalletViewSet,
)

router = SimpleRouter(trailing_slash=False)
router.register("wallet/transactions", TransactionViewSet, basename="transaction")
router.register("wallet", WalletViewSet, basename="wallet")
router.register("packages", PackageViewSet, basename="package")
router.register("purchases", PurchaseViewSet, basename="purchase")
router.register("admin/users", AdminUserViewSet, basename="admin-user")
router.register("admin/users", AdminGrantViewSet, basename="admin-user-grant")
router.register("admin/wallets", AdminWalletViewSet, basename="admin-wallet")
router.register("admin/transactions", AdminTransactionViewSet, basename="admin-transaction")
router.register("admin/approvals", AdminApprovalViewSet, basename="admin-approval")
router.register("admin/reports", AdminReportViewSet, basename="admin-report")

urlpatterns = router.urls
