"""The floor of any Python HTTP stack on this machine: a plain WSGI callable, no Django.

`make bench` serves it with the production `gunicorn.conf.py` (same workers, threads and
hooks; only the app differs) and loads it exactly like the product's spend, so
"ours ÷ floor" says how much of what is left is the framework and how much is simply
HTTP + Python + PostgreSQL. Per request it does what the product's happy path must do
and nothing else:

  * `Authorization: Token <key>`: the key's SHA-512 digest looked up with one indexed
    query on the key table joined to its user (the product's compiled knox lookup);
  * the JSON body parsed (`job_type`);
  * the fast path's two statements (wallet/services/_fast_path.py), prepared once per
    connection: the lock that also reserves the new rows' ids, then one guarded
    statement that inserts the ledger row, the job and the audit event (an HMAC-SHA256
    over its canonical JSON, computed here as the product does) and debits the wallet;
  * a JSON answer with the new balance and the rows' ids; `GET` balance answers one
    indexed read.

Only the benchmark runs it (bench/http_bench.py); it never serves the product.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from datetime import UTC, datetime, timedelta

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]
AUDIT_KEY = os.environ["AUDIT_HMAC_KEY"].encode()
VELOCITY_LIMIT = int(os.environ.get("WALLET_VELOCITY_LIMIT", "30"))
VELOCITY_WINDOW = timedelta(seconds=int(os.environ.get("WALLET_VELOCITY_WINDOW_SECONDS", "60")))

KEY_LOOKUP = (
    "SELECT u.id, u.is_active FROM wallet_apitoken k JOIN auth_user u ON u.id = k.user_id"
    " WHERE k.digest = $1 AND k.expiry > $2 LIMIT 1"
)
# The text of _fast_path._lock_for_spend_statement.
LOCK = (
    "SELECT w.id, w.balance, w.audit_head, t.id, t.code, t.name, t.price, t.active,"
    " nextval(pg_get_serial_sequence('wallet_transaction', 'id')),"
    " nextval(pg_get_serial_sequence('jobs_job', 'id'))"
    " FROM wallet_wallet w JOIN jobs_jobtype t ON t.code = $1"
    " WHERE w.user_id = $2 FOR UPDATE OF w"
)
# The shape of _fast_path._book_statement for a spend without a reference: the guard
# (velocity count, balance), the three inserts from the guard, the guarded debit.
BOOK = (
    "WITH guard AS (SELECT 1 WHERE (SELECT count(*) FROM (SELECT 1 FROM wallet_transaction"
    " WHERE wallet_id = $1 AND type IN ('spend', 'transfer_out') AND status = 'success'"
    " AND created_at >= $2 LIMIT $3) recent) < $3"
    " AND EXISTS (SELECT 1 FROM wallet_wallet WHERE id = $1 AND balance >= $4))"
    ", row0 AS (INSERT INTO wallet_transaction (id, wallet_id, user_id, type, amount, status,"
    " balance_after, reference_id, request_fingerprint, description, actor_id, created_at,"
    " updated_at) SELECT $5::bigint, $1::bigint, $6::integer, 'spend', -$4::bigint, 'success',"
    " $7::bigint, NULL, '', $8::text, $6::integer, $9::timestamptz, $9::timestamptz FROM guard)"
    ", row1 AS (INSERT INTO jobs_job (id, user_id, job_type_id, transaction_id, status,"
    " points_used, input, error, attempts, created_at, updated_at) SELECT $10::bigint,"
    " $6::integer, $11::bigint, $5::bigint, 'pending', $4::bigint, '{}', '', 0,"
    " $9::timestamptz, $9::timestamptz FROM guard)"
    ", row2 AS (INSERT INTO audit_auditevent (chain, action, actor_id, wallet_id,"
    " transaction_id, amount, balance_before, balance_after, request_id, ip, metadata,"
    " created_at, key_id, prev_hash, hash) SELECT $12::text, 'wallet.spend', $6::integer,"
    " $1::bigint, $5::bigint, -$4::bigint, $13::bigint, $7::bigint, $14::text, NULL,"
    " $15::jsonb, $9::timestamptz, 'k1', $16::text, $17::text FROM guard)"
    ", debit AS (UPDATE wallet_wallet SET balance = balance - $4, audit_head = $17,"
    " updated_at = $9 WHERE id = $1 AND balance >= $4 AND EXISTS (SELECT 1 FROM guard)"
    " RETURNING balance) SELECT balance FROM debit"
)
BALANCE = "SELECT balance FROM wallet_wallet WHERE user_id = $1"

_local = threading.local()


def _connection() -> psycopg.Connection:
    """One persistent connection per thread (as CONN_MAX_AGE gives each gthread)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(DATABASE_URL, cursor_factory=psycopg.RawCursor)
    return conn


def _answer(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [data]


def _user(environ, conn) -> int | None:
    scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme != "Token" or not key:
        return None
    digest = hashlib.sha512(key.encode("ascii")).hexdigest()
    row = conn.execute(KEY_LOOKUP, (digest, datetime.now(UTC)), prepare=True).fetchone()
    conn.commit()
    return row[0] if row and row[1] else None


def _spend(conn, user_id: int, job_type: str) -> dict | None:
    now = datetime.now(UTC)
    with conn.transaction():
        row = conn.execute(LOCK, (job_type, user_id), prepare=True).fetchone()
        if row is None:
            return None
        wallet_id, balance, head, type_id, _code, name, price, _active, txn_id, job_id = row
        after = balance - price
        metadata = json.dumps({"job_id": job_id, "job_type": job_type}, sort_keys=True)
        payload = json.dumps(
            [wallet_id, txn_id, -price, balance, after, metadata, now.isoformat(), head],
            separators=(",", ":"),
        )
        digest = hmac.new(AUDIT_KEY, payload.encode(), hashlib.sha256).hexdigest()
        params = (
            wallet_id,
            now - VELOCITY_WINDOW,
            VELOCITY_LIMIT,
            price,
            txn_id,
            user_id,
            after,
            name,
            now,
            job_id,
            type_id,
            f"wallet:{wallet_id}",
            balance,
            "",
            metadata,
            head,
            digest,
        )
        booked = conn.execute(BOOK, params, prepare=True).fetchone()
    if booked is None:
        return None
    return {
        "transaction": {"id": txn_id, "amount": -price, "balance_after": booked[0]},
        "job": {"id": job_id, "status": "pending"},
    }


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        return _answer(start_response, "200 OK", {"status": "ok"})
    conn = _connection()
    user_id = _user(environ, conn)
    if user_id is None:
        return _answer(start_response, "401 Unauthorized", {"error": "not_authenticated"})
    if path == "/api/v1/wallet/balance" and environ["REQUEST_METHOD"] == "GET":
        row = conn.execute(BALANCE, (user_id,), prepare=True).fetchone()
        conn.commit()
        return _answer(start_response, "200 OK", {"balance": row[0] if row else 0})
    if path == "/api/v1/wallet/spend" and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        result = _spend(conn, user_id, str(body.get("job_type", "")))
        if result is None:
            return _answer(start_response, "402 Payment Required", {"error": "refused"})
        return _answer(start_response, "201 Created", result)
    return _answer(start_response, "404 Not Found", {"error": "not_found"})
