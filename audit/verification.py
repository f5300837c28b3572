"""Read-only proof that nobody edited the audit trail: its hash chains and checkpoints.

Each audit chain (one per wallet, plus the system chain) is streamed in (chain, id) order
through a server-side cursor (`.iterator(chunk_size=…)`), because each HMAC must be
recomputed in Python with a key the database never sees. Only the current event and
its predecessor's hash are held in memory. A checkpoint (each chain's length and head,
kept away from the database) proves later that no chain was truncated or rewritten.

`run_verification` runs the checks an application adds (the wallet's ledger invariants,
see `wallet.verification`) and then the chains, in one read-only REPEATABLE READ
transaction on PostgreSQL, so every check sees one consistent snapshot while writers
keep working (it takes no locks). Each problem becomes a `Finding` naming what is wrong
and where (wallet, transaction, audit event, transfer), with the expected and the found
value.
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from audit.hashing import HASHED_FIELDS, UnknownAuditKey, hmac_of, key_for
from audit.models import SYSTEM_CHAIN, AuditChainHead, AuditEvent

WALLET_CHAIN_PREFIX = "wallet:"
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
    # Set when a checkpoint was given: {"chains": how many it holds, "held": no finding}.
    checkpoint_checked: dict[str, Any] | None = None

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
            "checkpoint_checked": self.checkpoint_checked,
        }


# A named check: (what the progress bar shows, a function yielding its findings).
Check = tuple[str, Callable[[], Iterator[Finding]]]


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


def check_named_chain_heads() -> Iterator[Finding]:
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


def _run_checks(
    report: Report,
    checks: Sequence[Check],
    counts: Callable[[], dict[str, int]],
    *,
    chunk_size: int,
    progress: bool,
    stream: Any,
    tracker: ChainTracker,
) -> None:
    report.counts = {**counts(), "audit_events": AuditEvent.objects.count()}
    taken_at = timezone.now().isoformat()
    with tqdm(
        total=len(checks),
        desc="ledger checks",
        unit="check",
        disable=not progress,
        file=stream,
    ) as bar:
        for name, check in checks:
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


def run_verification(
    checks: Sequence[Check],
    *,
    counts: Callable[[], dict[str, int]],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
    stream: Any = None,
    checkpoint: dict[str, dict[str, Any]] | None = None,
) -> Report:
    """Run `checks`, then the audit chains, on one consistent snapshot; never writes or locks.

    `counts` names what the checks cover (e.g. wallets, transactions); the audit
    events are counted here.

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
        checks,
        counts,
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
    if checkpoint is not None:
        held = not any(finding.check == "checkpoint" for finding in report.findings)
        report.checkpoint_checked = {"chains": len(checkpoint), "held": held}
    return report
