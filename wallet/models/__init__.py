"""The wallet's models, one module per concern; import them from here.

`ledger` (wallets, transaction rows, their types and statuses), `approvals` (four-eyes
requests for large adjustments), `lots` (where points came from, and which lots each
debit drew from), `purchases` (packages, purchases, clawbacks, the provider's webhook
inbox), `api_keys` (hashed API keys) and `reports` (the finance report's proxy). Callers
write `from wallet.models import Wallet`, as Django expects of
an app's models; the submodules are the layout, not an interface.
"""

from wallet.models.api_keys import ApiToken
from wallet.models.approvals import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalRequestQuerySet,
    ApprovalStatus,
)
from wallet.models.ledger import (
    CREDIT_TYPES,
    DEBIT_TYPES,
    VELOCITY_TYPES,
    Transaction,
    TransactionQuerySet,
    TransactionStatus,
    TransactionType,
    Wallet,
    WalletManager,
    new_transfer_id,
)
from wallet.models.lots import Allocation, Lot, LotKind, LotQuerySet
from wallet.models.purchases import (
    Clawback,
    ClawbackKind,
    EventStatus,
    PointPackage,
    ProviderEvent,
    Purchase,
    PurchaseStatus,
)
from wallet.models.reports import FinanceReport

__all__ = [
    "CREDIT_TYPES",
    "DEBIT_TYPES",
    "VELOCITY_TYPES",
    "Allocation",
    "ApiToken",
    "ApprovalKind",
    "ApprovalRequest",
    "ApprovalRequestQuerySet",
    "ApprovalStatus",
    "Clawback",
    "ClawbackKind",
    "EventStatus",
    "FinanceReport",
    "Lot",
    "LotKind",
    "LotQuerySet",
    "PointPackage",
    "ProviderEvent",
    "Purchase",
    "PurchaseStatus",
    "Transaction",
    "TransactionQuerySet",
    "TransactionStatus",
    "TransactionType",
    "Wallet",
    "WalletManager",
    "new_transfer_id",
]
