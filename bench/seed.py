"""Fund the template's wallets the way the ledger requires (run by bench.db).

One deposit row per wallet, its paid lot and its audit event, chained with the product's own
`build_wallet_event`, so balance = ledger sum and every chain verifies before any
benchmark writes to it.
"""

from __future__ import annotations

import argparse

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wallets", type=int, required=True)
    args = parser.parse_args()
    django.setup()

    from django.db import connection, transaction
    from django.utils import timezone

    from audit.services import build_wallet_event, save_events
    from bench.db import SEED_BALANCE
    from wallet.models import Lot, LotKind, Transaction, TransactionType, Wallet

    now = timezone.now()
    ids = range(1, args.wallets + 1)
    with transaction.atomic():
        wallets = [Wallet(id=i, user_id=i, balance=SEED_BALANCE) for i in ids]
        Wallet.objects.bulk_create(wallets, batch_size=5000)
        rows = [
            Transaction(
                id=i,
                wallet_id=i,
                user_id=i,
                type=TransactionType.DEPOSIT,
                amount=SEED_BALANCE,
                balance_after=SEED_BALANCE,
                reference_id=f"seed-{i}",
                created_at=now,
            )
            for i in ids
        ]
        Transaction.objects.bulk_create(rows, batch_size=5000)
        events = [
            build_wallet_event(
                wallet=wallet,
                action="wallet.deposit",
                transaction_id=wallet.pk,
                amount=SEED_BALANCE,
                balance_before=0,
                balance_after=SEED_BALANCE,
            )
            for wallet in wallets
        ]
        save_events(events)
        Wallet.objects.bulk_update(wallets, ["audit_head"], batch_size=5000)
        # Each deposit booked its points into a paid lot (wallet/services/_lots.py).
        lots = [
            Lot(
                wallet_id=i,
                kind=LotKind.PAID,
                amount=SEED_BALANCE,
                remaining=SEED_BALANCE,
                source_id=i,
                created_at=now,
            )
            for i in ids
        ]
        Lot.objects.bulk_create(lots, batch_size=5000)
        with connection.cursor() as cursor:
            for table in ("wallet_wallet", "wallet_transaction"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [args.wallets]
                )


if __name__ == "__main__":
    main()
