"""The consistent ledger bench/verify_ledger_memory.py fills a scratch database with:
rows, jobs, lots, allocations and HMAC-chained audit events computed in Python the way
wallet/services/ books them (bench/ledger_copy.py writes them, in batches, with COPY).

Each operation mirrors its service: a deposit (a paid lot), a grant (a promotional lot,
most of them expiring), a spend with its job and a transfer (drawing from the live lots
in draw order, wallet/services/_lots.py; a transfer carries what it drew into lots of the
same kind and expiry), a partial refund (given back to the lots its spend drew from, the
last drawn first; an expired lot's share to a new lot that expires at once) and an
adjustment (a paid lot, or a draw). A debit first books the `expiry` row of each due lot
of its wallet, as the services do. Every wallet's debt stays 0 (no clawbacks).
"""

from __future__ import annotations

import bisect
import random
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import psycopg
from psycopg.types.json import Jsonb

from bench.ledger_copy import Batch, CopyWriter

SPEND_PRICE = 25
BATCH = 10_000
# One operation per second of the ledger's clock: 20,000 rows span about 5.5 hours,
# 200,000 about 2.3 days, so grants expiring within hours do expire along the way.
TICK = timedelta(seconds=1)
PROMOTIONAL, PAID = "promotional", "paid"
CAMPAIGNS = ("welcome", "spring", "")


@dataclass(slots=True, eq=False)
class LotState:
    """One lot as wallet/models/lots.py stores it, with the generator's bookkeeping."""

    id: int
    wallet_id: int
    kind: str
    amount: int
    remaining: int
    expires_at: datetime | None
    campaign: str
    source_id: int
    origin_id: int | None
    created_at: datetime
    written: bool = False  # COPYed already: later remainders go out as an UPDATE
    opening: ClassVar[bool] = False  # only a migration writes opening lots

    def draw_key(self) -> tuple:
        """LotQuerySet.in_draw_order: promotional first, soonest expiry first (never
        last), then the oldest. Paid lots never expire, so the lots that can expire
        (promotional with an expiry) come first, soonest first: the due ones are a prefix."""
        never = self.expires_at is None
        return (
            self.kind != PROMOTIONAL,
            never,
            self.created_at if never else self.expires_at,
            self.created_at,
            self.id,
        )


@dataclass(slots=True, eq=False)
class SpendState:
    """A spend still refundable: its id, what is left to refund, and per lot it drew
    from (in draw order) the points not yet given back."""

    id: int
    refundable: int
    shares: list[list] = field(default_factory=list)  # [LotState, open points]


@dataclass
class WalletState:
    id: int
    balance: int = 0
    head: str = ""
    lots: list[LotState] = field(default_factory=list)  # remaining > 0, in draw order
    spends: deque = field(default_factory=lambda: deque(maxlen=4))  # SpendState


class Generator:
    """Books consistent ledger rows, jobs, lots, allocations and audit events the way
    wallet/services/ does; `writer` writes them every BATCH rows."""

    def __init__(self, conn: psycopg.Connection, wallets: int, seed: int) -> None:
        from django.conf import settings

        from audit.hashing import hash_fields  # needs django.setup()

        self.hash_fields = hash_fields
        self.key_id = settings.AUDIT_HMAC_KEY_ID
        self.large_amount = settings.WALLET_LARGE_AMOUNT_THRESHOLD
        self.writer = CopyWriter(conn)
        self.rng = random.Random(seed)
        self.wallets = [WalletState(id=i) for i in range(1, wallets + 1)]
        self.staff_id = wallets + 1  # refunds, adjustments and grants are staff acts
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)
        self.next_txn = 1
        self.next_event = 1
        self.next_job = 1
        self.next_lot = 1
        self.allocation_count = 0
        self.batch = Batch()

    # -- rows ------------------------------------------------------------------------
    def _tick(self) -> datetime:
        self.clock += TICK
        return self.clock

    def _row(self, wallet: WalletState, kind: str, amount: int, now: datetime, **extra) -> int:
        """A ledger row and its audit events (wallet/services/_booking.py); `extra`:
        reference_id, description, related, transfer_id, actor, meta."""
        txn_id, before, actor = self.next_txn, wallet.balance, extra.get("actor")
        self.next_txn += 1
        wallet.balance += amount
        # ledger_copy.TXN_COLUMNS' order; user id == wallet id in this scratch database.
        row = (txn_id, wallet.id, wallet.id, kind, amount, "success", wallet.balance)
        row += (extra.get("reference_id"), "", extra.get("description", ""), extra.get("related"))
        self.batch.txns.append((*row, extra.get("transfer_id"), actor, now, now))
        action = f"wallet.{kind}"
        self._event(wallet, action, actor, txn_id, amount, before, now, extra.get("meta", {}))
        if abs(amount) >= self.large_amount:
            flag = {"threshold": self.large_amount}
            self._event(wallet, "suspicious.large_amount", actor, txn_id, amount, before, now, flag)
        return txn_id

    def _event(self, wallet, action, actor, txn_id, amount, before, now, metadata) -> None:
        """The event appended to the wallet's chain (audit.services.build_wallet_event)."""
        chain, after = f"wallet:{wallet.id}", wallet.balance
        fields = {
            "chain": chain,
            "action": action,
            "actor_id": actor,
            "wallet_id": wallet.id,
            "transaction_id": txn_id,
            "amount": amount,
            "balance_before": before,
            "balance_after": after,
            "request_id": "",
            "ip": None,
            "metadata": metadata,
            "created_at": now,
            "key_id": self.key_id,
            "prev_hash": wallet.head,
        }
        digest = self.hash_fields(fields, self.key_id)
        event = (self.next_event, chain, action, actor, wallet.id, txn_id, amount, before, after)
        self.batch.events.append(
            (*event, "", None, Jsonb(metadata), now, self.key_id, wallet.head, digest)
        )
        self.next_event += 1
        wallet.head = digest

    # -- lots (wallet/services/_lots.py) -----------------------------------------------
    def _lot(
        self,
        wallet: WalletState,
        source_id: int,
        amount: int,
        now: datetime,
        *,
        kind: str = PAID,
        expires_at: datetime | None = None,
        campaign: str = "",
        origin: LotState | None = None,
    ) -> LotState:
        """credit_lot: a new lot holding a credit's points."""
        lot = LotState(
            self.next_lot,
            wallet.id,
            kind,
            amount,
            amount,
            None if kind == PAID else expires_at,
            campaign,
            source_id,
            None if origin is None else origin.id,
            now,
        )
        self.next_lot += 1
        self.batch.new_lots.append(lot)
        bisect.insort(wallet.lots, lot, key=LotState.draw_key)
        return lot

    def _continue(
        self, wallet: WalletState, source_id: int, lot: LotState, points: int, now: datetime
    ) -> LotState:
        """A new lot continuing `lot` (same kind, expiry and campaign): what a transfer's
        credit carries over, or a refund's share of a lot that has expired."""
        return self._lot(
            wallet,
            source_id,
            points,
            now,
            kind=lot.kind,
            expires_at=lot.expires_at,
            campaign=lot.campaign,
            origin=lot,
        )

    def _move(self, lot: LotState, points: int) -> None:
        lot.remaining += points
        if lot.written:
            self.batch.changed_lots[lot.id] = lot

    def _allocate(self, txn_id: int, lot: LotState, points: int) -> None:
        self.batch.allocations.append((txn_id, lot.id, points))
        self.allocation_count += 1

    def _live_balance(self, wallet: WalletState, now: datetime) -> int:
        """The balance a debit could draw after the due lots expired."""
        due = 0
        for lot in wallet.lots:
            if lot.expires_at is None or lot.expires_at > now:
                break
            due += lot.remaining
        return wallet.balance - due

    def _expire_due(self, wallet: WalletState, now: datetime) -> None:
        """expire_due: one `expiry` row per lot past its expiry that still holds points."""
        while wallet.lots and wallet.lots[0].expires_at is not None:
            lot = wallet.lots[0]
            if lot.expires_at > now:
                break
            wallet.lots.pop(0)
            description = f"Expiry of lot {lot.id}" + (f" ({lot.campaign})" if lot.campaign else "")
            txn_id = self._row(
                wallet,
                "expiry",
                -lot.remaining,
                now,
                reference_id=f"lot:{lot.id}",
                description=description,
                meta={"reason": "expiry"},
            )
            self._allocate(txn_id, lot, lot.remaining)
            self._move(lot, -lot.remaining)

    def _draw(self, wallet: WalletState, txn_id: int, points: int) -> list[tuple[LotState, int]]:
        """draw: take `points` from the live lots in draw order (the due ones expired
        first, so every lot left is live)."""
        drawn = []
        while points:
            lot = wallet.lots[0]
            take = min(lot.remaining, points)
            self._allocate(txn_id, lot, take)
            self._move(lot, -take)
            drawn.append((lot, take))
            points -= take
            if lot.remaining == 0:
                wallet.lots.pop(0)
        return drawn

    def _give_back(
        self, wallet: WalletState, refund_id: int, spend: SpendState, points: int, now: datetime
    ) -> None:
        """give_back: a refund's points back to the lots its spend drew from, the last
        drawn first; an expired lot's share goes to a new lot continuing it, which the
        expiry right after books."""
        for share in reversed(spend.shares):
            lot, open_points = share
            take = min(open_points, points)
            if take == 0:
                continue
            share[1] -= take
            points -= take
            if lot.expires_at is not None and lot.expires_at <= now:
                self._continue(wallet, refund_id, lot, take, now)
            else:
                self._allocate(refund_id, lot, take)
                if lot.remaining == 0:
                    bisect.insort(wallet.lots, lot, key=LotState.draw_key)
                self._move(lot, take)
            if points == 0:
                break
        if points:  # a spend with no allocations (none here): a paid lot
            self._lot(wallet, refund_id, points, now)
        self._expire_due(wallet, now)

    # -- operations ------------------------------------------------------------------
    def deposit(self, wallet: WalletState) -> None:
        now, ref = self._tick(), f"pay-{self.next_txn}"
        amount = self.rng.randint(50, 500)
        txn_id = self._row(wallet, "deposit", amount, now, reference_id=ref)
        self._lot(wallet, txn_id, amount, now)

    def grant(self, wallet: WalletState) -> None:
        now = self._tick()
        amount, campaign = self.rng.randint(20, 200), self.rng.choice(CAMPAIGNS)
        expires_at = None
        meta = {"reason": "bench promotion", "campaign": campaign}
        if self.rng.random() < 0.7:
            expires_at = now + timedelta(minutes=self.rng.randint(30, 12 * 60))
            meta["expires_at"] = expires_at.isoformat()
        txn_id = self._row(
            wallet, "grant", amount, now, actor=self.staff_id, description=meta["reason"], meta=meta
        )
        self._lot(
            wallet, txn_id, amount, now, kind=PROMOTIONAL, expires_at=expires_at, campaign=campaign
        )

    def spend(self, wallet: WalletState) -> None:
        now = self._tick()
        if self._live_balance(wallet, now) < SPEND_PRICE:
            return self.deposit(wallet)
        self._expire_due(wallet, now)
        job_id = self.next_job
        self.next_job += 1
        meta = {"job_id": job_id, "job_type": "fortune"}
        txn_id = self._row(
            wallet, "spend", -SPEND_PRICE, now, actor=wallet.id, description="Fortune", meta=meta
        )
        drawn = self._draw(wallet, txn_id, SPEND_PRICE)
        job = (job_id, wallet.id, 1, txn_id, "completed", SPEND_PRICE, Jsonb({}), "", 1)
        self.batch.jobs.append((*job, now, now, now, now))  # started, finished, created, updated
        wallet.spends.append(SpendState(txn_id, SPEND_PRICE, [[lot, n] for lot, n in drawn]))

    def transfer(self, wallet: WalletState) -> None:
        target = self.rng.choice(self.wallets)
        amount = self.rng.randint(1, 40)
        now = self._tick()
        if target is wallet or self._live_balance(wallet, now) < amount:
            return self.deposit(wallet)
        self._expire_due(wallet, now)
        pair = uuid.uuid4()
        debit_id = self._row(
            wallet, "transfer_out", -amount, now, actor=wallet.id, transfer_id=pair
        )
        credit_id = self._row(target, "transfer_in", amount, now, actor=wallet.id, transfer_id=pair)
        for lot, points in self._draw(wallet, debit_id, amount):  # carry
            self._continue(target, credit_id, lot, points, now)

    def refund(self, wallet: WalletState) -> None:
        open_spends = [s for s in wallet.spends if s.refundable > 0]
        if not open_spends:
            return self.spend(wallet)
        spend, now = open_spends[0], self._tick()
        amount = min(spend.refundable, self.rng.randint(1, 10))
        spend.refundable -= amount
        reason = "bench refund"
        extra = {"related": spend.id, "description": reason, "meta": {"reason": reason}}
        txn_id = self._row(wallet, "refund", amount, now, actor=self.staff_id, **extra)
        self._give_back(wallet, txn_id, spend, amount, now)

    def adjust(self, wallet: WalletState) -> None:
        now = self._tick()
        self._expire_due(wallet, now)
        amount = self.rng.choice([-2, 3, 5])
        if wallet.balance + amount < 0:
            amount = 3
        meta = {"reason": "bench"}
        txn_id = self._row(
            wallet, "adjustment", amount, now, actor=self.staff_id, description="bench", meta=meta
        )
        if amount > 0:  # book: a credit books a paid lot, a debit draws
            self._lot(wallet, txn_id, amount, now)
        else:
            self._draw(wallet, txn_id, -amount)

    def run(self, transactions: int) -> None:
        operations = [self.deposit] * 22 + [self.grant] * 5 + [self.spend] * 30
        operations += [self.transfer] * 28 + [self.refund] * 5 + [self.adjust] * 10
        self.writer.seed([w.id for w in self.wallets], self.staff_id, SPEND_PRICE, self.clock)
        while self.next_txn <= transactions:
            self.rng.choice(operations)(self.rng.choice(self.wallets))
            if len(self.batch.txns) >= BATCH:
                self.writer.flush(self.batch)
        self.writer.flush(self.batch)
        self.writer.finish((w.id, w.balance, w.head) for w in self.wallets)
