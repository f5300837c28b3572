"""Read-only proof that every point is explained by the ledger and nobody edited history.

`verify_ledger()` runs every check in one read-only REPEATABLE READ transaction on
PostgreSQL, so the checks see one consistent snapshot while writers keep working (it
takes no locks). Memory stays bounded on large tables:

* the ledger checks are SQL aggregations / window functions that return only the
  rows that are wrong, so the database does the per-wallet work;
* the audit chains are streamed in (chain, id) order through a server-side cursor
  (`.iterator(chunk_size=…)`), because each HMAC must be recomputed in Python with
  a key the database never sees. Only the current event and its predecessor's hash
  are held in memory.

Each problem becomes a `Finding` naming what is wrong and where (wallet, transaction,
audit event, transfer), with the expected and the found value.
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from audit.hashing import HASHED_FIELDS, UnknownAuditKey, hmac_of, key_for
from audit.models import SYSTEM_CHAIN, AuditChainHead, AuditEvent
from wallet.models import Transaction, TransactionStatus, TransactionType, Wallet

WALLET_CHAIN_PREFIX = "wallet:"
OPERATION_ACTIONS = tuple(f"wallet.{t.value}" for t in TransactionType)
DEFAULT_CHUNK_SIZE = 2000


@dataclass
class Finding:
    check: str
    message: str
    wallet_id: int | None = None
    transaction_id: int | None = None
    event_id: int | None = None
    transfer_id: str | None = None
    chain: str | None = None
    expected: Any = None
    found: Any = None

    def line(self) -> str:
        return f"[{self.check}] {self.message} (expected {self.expected!r}, found {self.found!r})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    checkpoint: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "finding_count": len(self.findings),
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "findings": [finding.as_dict() for finding in self.findings],
            "checkpoint": self.checkpoint,
        }


# --- SQL helpers --------------------------------------------------------------------


def _tables() -> dict[str, str]:
    return {
        "txn": Transaction._meta.db_table,
        "wallet": Wallet._meta.db_table,
        "event": AuditEvent._meta.db_table,
    }


def _differs(left: str, right: str) -> str:
    """NULL-safe inequality in the current database's dialect."""
    if connection.vendor == "sqlite":
        return f"{left} IS NOT {right}"
    return f"{left} IS DISTINCT FROM {right}"


def _rows(sql: str, params: tuple = ()) -> Iterator[tuple]:
    """Rows of a query that returns only problems (small), fetched in batches."""
    with connection.cursor() as cursor:
        cursor.execute(sql.format(**_tables()), params)
        while batch := cursor.fetchmany(500):
            yield from batch


# --- Ledger checks (SQL does the per-wallet aggregation) ----------------------------


def balance_differences(*, include_negative: bool = False) -> Iterator[tuple[int, int, int]]:
    """(wallet id, cached balance, ledger sum) of every wallet whose two disagree.

    One grouped query; the database aggregates per wallet and returns only the wallets
    that are wrong, so this is cheap in memory however large the ledger is.
    """
    negative = " OR w.balance < 0" if include_negative else ""
    sql = f"""
        SELECT w.id, w.balance, COALESCE(s.total, 0)
        FROM {{wallet}} w
        LEFT JOIN (SELECT wallet_id, SUM(amount) AS total FROM {{txn}}
                   WHERE status = %s GROUP BY wallet_id) s ON s.wallet_id = w.id
        WHERE w.balance <> COALESCE(s.total, 0){negative}
        ORDER BY w.id
    """
    for wallet_id, balance, total in _rows(sql, (TransactionStatus.SUCCESS,)):
        yield wallet_id, balance, int(total)


def check_balances() -> Iterator[Finding]:
    """Each wallet's cached balance equals the sum of its successful transactions."""
    for wallet_id, balance, total in balance_differences(include_negative=True):
        if balance != total:
            yield Finding(
                "balance",
                f"wallet {wallet_id}: balance differs from the sum of its successful transactions",
                wallet_id=wallet_id,
                expected=total,
                found=balance,
            )
        if balance < 0:
            yield Finding(
                "negative_balance",
                f"wallet {wallet_id}: negative balance",
                wallet_id=wallet_id,
                expected=">= 0",
                found=balance,
            )


def check_balance_after_chains() -> Iterator[Finding]:
    """Per wallet, in id order: each successful row's balance_after = previous + amount.

    Row ids are drawn while the wallet is locked, so id order is the order in which the
    wallet's balance moved. Checking each link (not a running total) names the one row
    whose amount or balance_after was changed instead of every row after it.
    """
    sql = """
        SELECT id, wallet_id, amount, balance_after, prev_after FROM (
            SELECT id, wallet_id, amount, balance_after,
                   COALESCE(LAG(balance_after) OVER (PARTITION BY wallet_id ORDER BY id), 0)
                       AS prev_after
            FROM {txn} WHERE status = %s
        ) chained
        WHERE balance_after <> prev_after + amount OR balance_after < 0
        ORDER BY wallet_id, id
    """
    for txn_id, wallet_id, amount, balance_after, prev_after in _rows(
        sql, (TransactionStatus.SUCCESS,)
    ):
        yield Finding(
            "balance_after",
            f"wallet {wallet_id}, transaction {txn_id}: balance_after is not the previous "
            f"balance_after ({prev_after}) plus the amount ({amount:+d})",
            wallet_id=wallet_id,
            transaction_id=txn_id,
            expected=prev_after + amount,
            found=balance_after,
        )


def check_transfer_pairs() -> Iterator[Finding]:
    """Every transfer_id has exactly one transfer_out and one transfer_in, summing to 0."""
    sql = """
        SELECT transfer_id, COUNT(*), SUM(amount), MIN(id), MIN(wallet_id)
        FROM {txn} WHERE transfer_id IS NOT NULL
        GROUP BY transfer_id
        HAVING COUNT(*) <> 2 OR SUM(amount) <> 0
            OR SUM(CASE WHEN type = %s THEN 1 ELSE 0 END) <> 1
            OR SUM(CASE WHEN type = %s THEN 1 ELSE 0 END) <> 1
            OR COUNT(DISTINCT wallet_id) <> 2 OR COUNT(DISTINCT status) <> 1
        ORDER BY MIN(id)
    """
    params = (TransactionType.TRANSFER_OUT, TransactionType.TRANSFER_IN)
    for transfer_id, rows, total, first_id, wallet_id in _rows(sql, params):
        members = list(
            Transaction.objects.filter(transfer_id=transfer_id)
            .order_by("id")
            .values_list("id", "wallet_id", "type", "amount", "status")[:10]
        )
        described = ", ".join(f"#{i} wallet {w} {t} {a:+d} {s}" for i, w, t, a, s in members)
        yield Finding(
            "transfer_pair",
            f"wallet {wallet_id}, transaction {first_id}: transfer {transfer_id} is not one "
            f"transfer_out/transfer_in pair netting to zero ({described})",
            wallet_id=wallet_id,
            transaction_id=first_id,
            transfer_id=str(transfer_id),
            expected="2 rows (out + in, two wallets, same status) summing to 0",
            found=f"{rows} row(s) summing to {int(total)}",
        )


def check_refunds() -> Iterator[Finding]:
    """Successful refunds of a spend never exceed it and stay in the spend's wallet."""
    sql = """
        SELECT s.id, s.wallet_id, s.type, s.status, s.amount, SUM(r.amount),
               SUM(CASE WHEN r.wallet_id <> s.wallet_id THEN 1 ELSE 0 END)
        FROM {txn} r JOIN {txn} s ON s.id = r.related_transaction_id
        WHERE r.type = %s AND r.status = %s
        GROUP BY s.id, s.wallet_id, s.type, s.status, s.amount
        HAVING s.type <> %s OR s.status <> %s OR SUM(r.amount) > -s.amount
            OR SUM(CASE WHEN r.wallet_id <> s.wallet_id THEN 1 ELSE 0 END) > 0
        ORDER BY s.id
    """
    success, spend = TransactionStatus.SUCCESS, TransactionType.SPEND
    params = (TransactionType.REFUND, success, spend, success)
    for spend_id, wallet_id, txn_type, status, amount, refunded, foreign in _rows(sql, params):
        refundable = -amount if (txn_type == spend and status == success) else 0
        if foreign:
            yield Finding(
                "refund",
                f"wallet {wallet_id}, transaction {spend_id}: refunded into another wallet",
                wallet_id=wallet_id,
                transaction_id=spend_id,
                expected="refunds in the spend's wallet",
                found=f"{foreign} refund(s) in other wallets",
            )
        if refunded > refundable:
            yield Finding(
                "refund",
                f"wallet {wallet_id}, transaction {spend_id} ({txn_type}, {status}): "
                "refunded more than is refundable",
                wallet_id=wallet_id,
                transaction_id=spend_id,
                expected=f"<= {refundable}",
                found=int(refunded),
            )


def check_operation_events() -> Iterator[Finding]:
    """Exactly one `wallet.<type>` audit event per ledger row, and it agrees with the row."""
    missing_sql = """
        SELECT t.id, t.wallet_id, t.type, COUNT(e.id)
        FROM {txn} t
        LEFT JOIN {event} e ON e.transaction_id = t.id AND e.action = 'wallet.' || t.type
        GROUP BY t.id, t.wallet_id, t.type
        HAVING COUNT(e.id) <> 1
        ORDER BY t.id
    """
    for txn_id, wallet_id, txn_type, events in _rows(missing_sql):
        yield Finding(
            "operation_event",
            f"wallet {wallet_id}, transaction {txn_id}: wrong number of wallet.{txn_type} "
            "audit events",
            wallet_id=wallet_id,
            transaction_id=txn_id,
            expected=1,
            found=events,
        )
    placeholders = ", ".join(["%s"] * len(OPERATION_ACTIONS))
    mismatch_sql = f"""
        SELECT e.id, e.action, e.wallet_id, e.amount, e.balance_after,
               t.id, t.type, t.wallet_id, t.amount, t.balance_after
        FROM {{event}} e LEFT JOIN {{txn}} t ON t.id = e.transaction_id
        WHERE e.action IN ({placeholders}) AND (
            t.id IS NULL OR e.action <> 'wallet.' || t.type
            OR {_differs("e.wallet_id", "t.wallet_id")}
            OR {_differs("e.amount", "t.amount")}
            OR {_differs("e.balance_after", "t.balance_after")})
        ORDER BY e.id
    """
    for row in _rows(mismatch_sql, OPERATION_ACTIONS):
        event_id, action, e_wallet, e_amount, e_after = row[:5]
        txn_id, t_type, t_wallet, t_amount, t_after = row[5:]
        expected = {
            "action": f"wallet.{t_type}" if t_type else None,
            "wallet_id": t_wallet,
            "amount": t_amount,
            "balance_after": t_after,
        }
        found = {
            "action": action,
            "wallet_id": e_wallet,
            "amount": e_amount,
            "balance_after": e_after,
        }
        yield Finding(
            "event_mismatch",
            f"wallet {t_wallet if t_wallet is not None else e_wallet}, transaction {txn_id}, "
            f"audit event {event_id} ({action}): the event disagrees with its ledger row",
            wallet_id=t_wallet if t_wallet is not None else e_wallet,
            transaction_id=txn_id,
            event_id=event_id,
            expected={k: v for k, v in expected.items() if found[k] != v},
            found={k: v for k, v in found.items() if expected[k] != v},
        )


# --- Audit chains (streamed; HMACs recomputed in Python) ----------------------------


def _where(event: dict[str, Any]) -> str:
    """'wallet 3, transaction 12, audit event 40 (chain wallet:3)', leaving out what is None."""
    parts = [f"wallet {event['wallet_id']}"] if event["wallet_id"] is not None else []
    if event["transaction_id"] is not None:
        parts.append(f"transaction {event['transaction_id']}")
    parts.append(f"audit event {event['id']} ({event['chain']}, {event['action']})")
    return ", ".join(parts)


_STREAM_FIELDS = ("id", *HASHED_FIELDS, "hash")


class _Keys:
    """Key lookup by key_id, cached: one settings lookup per key, not per event."""

    def __init__(self) -> None:
        self._cache: dict[str, bytes | None] = {}

    def get(self, key_id: str) -> bytes | None:
        if key_id not in self._cache:
            try:
                self._cache[key_id] = key_for(key_id)
            except UnknownAuditKey:
                self._cache[key_id] = None
        return self._cache[key_id]


def _chain_owner_finding(event: dict[str, Any]) -> Finding | None:
    chain, wallet_id = event["chain"], event["wallet_id"]
    if chain == SYSTEM_CHAIN and wallet_id is None:
        return None
    if chain == f"{WALLET_CHAIN_PREFIX}{wallet_id}":
        return None
    return Finding(
        "audit_chain",
        f"audit event {event['id']} sits in chain {chain!r} but belongs to wallet {wallet_id}",
        wallet_id=wallet_id,
        event_id=event["id"],
        chain=chain,
        expected=SYSTEM_CHAIN if wallet_id is None else f"{WALLET_CHAIN_PREFIX}{wallet_id}",
        found=chain,
    )


def check_event(
    event: dict[str, Any], prev_hash: str, prev_id: int | None, keys: _Keys
) -> Iterator[Finding]:
    """One event against its predecessor in the chain: link, key, HMAC, owner."""
    chain, event_id, wallet_id = event["chain"], event["id"], event["wallet_id"]
    if event["prev_hash"] != prev_hash:
        after = f"event {prev_id}" if prev_id is not None else "the start of the chain"
        yield Finding(
            "audit_link",
            f"{_where(event)}: prev_hash does not link to {after} "
            "(an event was deleted, inserted or reordered)",
            wallet_id=wallet_id,
            transaction_id=event["transaction_id"],
            event_id=event_id,
            chain=chain,
            expected=prev_hash,
            found=event["prev_hash"],
        )
    key = keys.get(event["key_id"])
    if key is None:
        yield Finding(
            "audit_key",
            f"{_where(event)}: unknown key id {event['key_id']!r}; add it to AUDIT_HMAC_OLD_KEYS",
            wallet_id=wallet_id,
            event_id=event_id,
            chain=chain,
            expected="a configured key id",
            found=event["key_id"],
        )
    else:
        fields = {name: event[name] for name in HASHED_FIELDS}
        recomputed = hmac_of(fields, key)
        if not hmac.compare_digest(recomputed, event["hash"]):
            yield Finding(
                "audit_hash",
                f"{_where(event)}: HMAC does not match its content "
                "(edited, or written under another key)",
                wallet_id=wallet_id,
                transaction_id=event["transaction_id"],
                event_id=event_id,
                chain=chain,
                expected=recomputed,
                found=event["hash"],
            )
    owner = _chain_owner_finding(event)
    if owner is not None:
        yield owner


def check_audit_chains(
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[Finding]:
    """Walk every chain from its first event, recomputing each HMAC and each link."""
    keys = _Keys()
    stream = (
        AuditEvent.objects.order_by("chain", "id")
        .values(*_STREAM_FIELDS)
        .iterator(chunk_size=chunk_size)
    )
    chain, prev_hash, prev_id = None, "", None
    for event in stream:
        if event["chain"] != chain:
            chain, prev_hash, prev_id = event["chain"], "", None
        yield from check_event(event, prev_hash, prev_id, keys)
        prev_hash, prev_id = event["hash"], event["id"]
        if on_event is not None:
            on_event(event)


def check_chain_heads() -> Iterator[Finding]:
    """The newest event of each chain is the head recorded on its wallet / head row.

    Together with the links this proves each chain end to end: from the genesis event
    (empty prev_hash) to the head the writers last recorded, so dropping the newest
    events of a chain is detected too.
    """
    sql = """
        SELECT w.id, w.audit_head, e.id, e.hash
        FROM {wallet} w
        LEFT JOIN (SELECT chain, MAX(id) AS last_id FROM {event} GROUP BY chain) l
               ON l.chain = 'wallet:' || w.id
        LEFT JOIN {event} e ON e.id = l.last_id
        WHERE COALESCE(e.hash, '') <> w.audit_head
        ORDER BY w.id
    """
    for wallet_id, head, last_id, last_hash in _rows(sql):
        yield Finding(
            "audit_head",
            f"wallet {wallet_id}: audit_head is not the hash of the chain's newest event "
            f"({'event ' + str(last_id) if last_id else 'no events'})",
            wallet_id=wallet_id,
            event_id=last_id,
            chain=f"{WALLET_CHAIN_PREFIX}{wallet_id}",
            expected=last_hash or "",
            found=head,
        )
    yield from _check_other_heads()


def _check_other_heads() -> Iterator[Finding]:
    """Chains with no wallet row (the system chain): head kept in AuditChainHead."""
    heads = dict(AuditChainHead.objects.values_list("name", "head"))
    chains = set(
        AuditEvent.objects.exclude(chain__startswith=WALLET_CHAIN_PREFIX)
        .values_list("chain", flat=True)
        .distinct()
    )
    for name in sorted(chains | set(heads)):
        last = AuditEvent.objects.filter(chain=name).order_by("-id").values("id", "hash").first()
        expected = last["hash"] if last else ""
        if heads.get(name, "") != expected:
            yield Finding(
                "audit_head",
                f"chain {name}: recorded head is not the hash of the chain's newest event",
                event_id=last["id"] if last else None,
                chain=name,
                expected=expected,
                found=heads.get(name),
            )


# --- Checkpoints: heads recorded earlier, kept away from the database -------------------


class CheckpointError(ValueError):
    """The checkpoint file cannot be read as a checkpoint."""


@dataclass
class ChainTracker:
    """Fed every streamed event in (chain, id) order: builds this run's checkpoint and
    compares each chain with the checkpoint given (if any), still in one pass.

    A chain's events are numbered 1, 2, … in id order. A checkpoint records, per chain,
    its length and its head (the hash of event number `length`). Appending keeps that
    event where it was; removing events, or rewriting any event up to the head (even with
    the key, re-hashing everything after it), changes or removes it. So history behind a
    checkpoint cannot be truncated or rewritten without a finding, even when the damage
    is made self-consistent and plain verification passes.
    """

    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)
    seen_at_head: dict[str, str] = field(default_factory=dict)

    def __call__(self, event: dict[str, Any]) -> None:
        chain = event["chain"]
        position = self.lengths.get(chain, 0) + 1
        self.lengths[chain] = position
        self.heads[chain] = event["hash"]
        recorded = self.expected.get(chain)
        if recorded is not None and position == recorded["length"]:
            self.seen_at_head[chain] = event["hash"]

    def checkpoint(self, taken_at: str) -> dict[str, Any]:
        chains = {
            chain: {"length": self.lengths[chain], "head": self.heads[chain]}
            for chain in sorted(self.lengths)
        }
        return {"version": CHECKPOINT_VERSION, "taken_at": taken_at, "chains": chains}

    def findings(self) -> Iterator[Finding]:
        for chain, recorded in sorted(self.expected.items()):
            length, head = recorded["length"], recorded["head"]
            now = self.lengths.get(chain, 0)
            found = self.seen_at_head.get(chain)
            short = head[:16]
            if found is None:
                what = (
                    f"truncated behind the checkpoint: it holds {now} event(s), "
                    f"the checkpoint recorded {length} with head {short}…"
                )
                seen = {"length": now, "head": self.heads.get(chain)}
            elif not hmac.compare_digest(found, head):
                what = (
                    f"rewritten behind the checkpoint: event number {length} "
                    f"is no longer the recorded head {short}…"
                )
                seen = {"length": now, "head_at_length": found}
            else:
                continue
            yield Finding(
                "checkpoint",
                f"chain {chain}: {what}",
                wallet_id=_wallet_of(chain),
                chain=chain,
                expected={"length": length, "head": head},
                found=seen,
            )


CHECKPOINT_VERSION = 1


def _wallet_of(chain: str) -> int | None:
    if chain.startswith(WALLET_CHAIN_PREFIX) and chain[len(WALLET_CHAIN_PREFIX) :].isdigit():
        return int(chain[len(WALLET_CHAIN_PREFIX) :])
    return None


def parse_checkpoint(document: Any) -> dict[str, dict[str, Any]]:
    """{chain: {"length", "head"}} from a checkpoint, or from a whole `--json` report."""
    if isinstance(document, dict) and isinstance(document.get("checkpoint"), dict):
        document = document["checkpoint"]
    chains = document.get("chains") if isinstance(document, dict) else None
    if not isinstance(chains, dict):
        raise CheckpointError('no checkpoint found (expected a "chains" object)')
    parsed = {}
    for chain, entry in chains.items():
        length = entry.get("length") if isinstance(entry, dict) else None
        head = entry.get("head") if isinstance(entry, dict) else None
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise CheckpointError(f"chain {chain}: length must be a positive integer")
        if not isinstance(head, str) or not head:
            raise CheckpointError(f"chain {chain}: head must be a non-empty string")
        parsed[str(chain)] = {"length": length, "head": head}
    return parsed


# --- Orchestration ------------------------------------------------------------------

LEDGER_CHECKS: tuple[tuple[str, Callable[[], Iterator[Finding]]], ...] = (
    ("balances", check_balances),
    ("balance_after chains", check_balance_after_chains),
    ("transfer pairs", check_transfer_pairs),
    ("refunds", check_refunds),
    ("operation events", check_operation_events),
    ("audit heads", check_chain_heads),
)


def _counts() -> dict[str, int]:
    return {
        "wallets": Wallet.objects.count(),
        "transactions": Transaction.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


def _run_checks(
    report: Report, *, chunk_size: int, progress: bool, stream: Any, tracker: ChainTracker
) -> None:
    report.counts = _counts()
    taken_at = timezone.now().isoformat()
    with tqdm(
        total=len(LEDGER_CHECKS),
        desc="ledger checks",
        unit="check",
        disable=not progress,
        file=stream,
    ) as bar:
        for name, check in LEDGER_CHECKS:
            bar.set_postfix_str(name)
            report.findings.extend(check())
            bar.update()
    with tqdm(
        total=report.counts["audit_events"],
        desc="audit chains",
        unit="event",
        disable=not progress,
        file=stream,
        mininterval=0.5,
    ) as bar:
        pending = 0

        def tick(event: dict[str, Any]) -> None:
            nonlocal pending
            tracker(event)
            pending += 1
            if pending == 1000:
                bar.update(pending)
                pending = 0

        report.findings.extend(check_audit_chains(chunk_size=chunk_size, on_event=tick))
        bar.update(pending)
    report.findings.extend(tracker.findings())
    report.checkpoint = tracker.checkpoint(taken_at)


def verify_ledger(
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
    stream: Any = None,
    checkpoint: dict[str, dict[str, Any]] | None = None,
) -> Report:
    """Run every check on one consistent snapshot; never writes, never locks.

    `checkpoint` ({chain: {"length", "head"}}, see `parse_checkpoint`) adds the proof
    that every chain still holds the recorded head at the recorded position. The
    report's own `checkpoint` describes this snapshot, for the next run.
    """
    started = time.monotonic()
    report = Report()
    tracker = ChainTracker(expected=dict(checkpoint or {}))
    run = functools.partial(
        _run_checks,
        report,
        chunk_size=chunk_size,
        progress=progress,
        stream=stream,
        tracker=tracker,
    )
    if connection.in_atomic_block:  # e.g. inside a test's transaction: use it as is
        run()
    else:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            run()
    report.seconds = time.monotonic() - started
    return report
