"""The spend statements run by the ceiling (pgbench) and the raw floor (psycopg threads).

"full" is what one spend of ours must do, one statement per round trip: lock the
wallet, count recent spends (velocity rule), insert the ledger row, the job and the
audit event, write the new balance and chain head, commit. "min" is the shorter set
quoted in issue 7 (lock, update, insert transaction, insert audit, commit) — measured
too so our numbers can be compared with the issue's reference table.

Both use a constant 64-hex "hash": the database cannot compute the keyed HMAC, and the
floor is about the driver, not about hashing. Wallet ids equal user ids in the seed.
"""

from __future__ import annotations

FAKE_HASH = "0" * 64
VELOCITY_WINDOW = "1 second"  # as WALLET_VELOCITY_WINDOW_SECONDS=1 in bench.db.django_env

# --- psycopg (%s placeholders) ---------------------------------------------------------

LOCK = "SELECT id, balance FROM wallet_wallet WHERE user_id = %s FOR UPDATE"
VELOCITY = (
    "SELECT count(*) FROM (SELECT 1 FROM wallet_transaction WHERE wallet_id = %s"
    " AND type IN ('spend', 'transfer_out') AND status = 'success'"
    f" AND created_at >= now() - interval '{VELOCITY_WINDOW}' LIMIT 1000000000) recent"
)
INSERT_TXN = (
    "INSERT INTO wallet_transaction (wallet_id, user_id, type, amount, status, balance_after,"
    " reference_id, request_fingerprint, description, actor_id, created_at, updated_at)"
    " VALUES (%s, %s, 'spend', %s, 'success', %s, NULL, '', 'Reading', %s, now(), now())"
    " RETURNING id"
)
INSERT_JOB = (
    "INSERT INTO jobs_job (user_id, job_type_id, transaction_id, status, points_used, input,"
    " error, attempts, created_at, updated_at)"
    " VALUES (%s, 1, %s, 'pending', %s, '{}', '', 0, now(), now()) RETURNING id"
)
INSERT_AUDIT = (
    "INSERT INTO audit_auditevent (chain, action, actor_id, wallet_id, transaction_id, amount,"
    " balance_before, balance_after, request_id, ip, metadata, created_at, key_id, prev_hash,"
    " hash) VALUES (%s, 'wallet.spend', %s, %s, %s, %s, %s, %s, '', NULL, %s, now(), 'k1',"
    f" '', '{FAKE_HASH}')"
)
UPDATE_WALLET = (
    f"UPDATE wallet_wallet SET balance = %s, audit_head = '{FAKE_HASH}', updated_at = now()"
    " WHERE id = %s"
)
UPDATE_MIN = "UPDATE wallet_wallet SET balance = balance - %s, updated_at = now() WHERE id = %s"


def floor_spend(conn, user_id: int, price: int, *, full: bool = True) -> None:
    """One spend with the raw driver: one round trip per statement, then commit."""
    with conn.cursor() as cur:
        wallet_id, balance = cur.execute(LOCK, (user_id,)).fetchone()
        after = balance - price
        if full:
            cur.execute(VELOCITY, (wallet_id,)).fetchone()
        txn_id = cur.execute(INSERT_TXN, (wallet_id, user_id, -price, after, user_id)).fetchone()[0]
        metadata = "{}"
        if full:
            job_id = cur.execute(INSERT_JOB, (user_id, txn_id, price)).fetchone()[0]
            metadata = f'{{"job_id": {job_id}, "job_type": "reading"}}'
        cur.execute(
            INSERT_AUDIT,
            (f"wallet:{wallet_id}", user_id, wallet_id, txn_id, -price, balance, after, metadata),
        )
        if full:
            cur.execute(UPDATE_WALLET, (after, wallet_id))
        else:
            cur.execute(UPDATE_MIN, (price, wallet_id))
    conn.commit()


# --- pgbench (:variables, \gset) -------------------------------------------------------


def _fill(sql: str, *values: object) -> str:
    """Put pgbench expressions where the psycopg statement has its %s placeholders."""
    parts = sql.split("%s")
    assert len(parts) == len(values) + 1, sql
    out = [parts[0]]
    for value, rest in zip(values, parts[1:], strict=True):
        out += [str(value), rest]
    return "".join(out)


def pgbench_script(*, hot: bool, wallets: int, price: int, full: bool = True) -> str:
    pick = r"\set uid 1" if hot else rf"\set uid random(1, {wallets})"
    lines = [
        pick,
        "BEGIN;",
        "SELECT id AS wid, balance AS bal FROM wallet_wallet WHERE user_id = :uid FOR UPDATE"
        r" \gset",
        rf"\set after :bal - {price}",
    ]
    if full:
        lines.append(_fill(VELOCITY, ":wid") + ";")
    lines.append(_fill(INSERT_TXN, ":wid", ":uid", -price, ":after", ":uid") + r" \gset txn_")
    metadata = "'{}'"
    if full:
        lines.append(_fill(INSERT_JOB, ":uid", ":txn_id", price) + r" \gset job_")
        metadata = """('{"job_id": ' || :job_id || ', "job_type": "reading"}')::jsonb"""
    lines.append(
        _fill(
            INSERT_AUDIT,
            "'wallet:' || :wid",
            ":uid",
            ":wid",
            ":txn_id",
            -price,
            ":bal",
            ":after",
            metadata,
        )
        + ";"
    )
    if full:
        lines.append(_fill(UPDATE_WALLET, ":after", ":wid") + ";")
    else:
        lines.append(_fill(UPDATE_MIN, price, ":wid") + ";")
    lines.append("END;")
    return "\n".join(lines) + "\n"
