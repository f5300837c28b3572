"""Schemathesis hooks loaded by the repository's schemathesis.toml.

`positive_data_is_never_a_validation_error`: the built-in `positive_data_acceptance`
check must allow 400 on the money operations (their business refusals, such as
`price_mismatch`, are 400s no schema can predict). This check keeps the schema honest
there: a request generated from the schema's positive data may meet a business refusal,
but never `validation_error`, which would mean the server enforces a rule the schema
does not state. Four exemptions, each re-checking the exact rule the schema states in
prose only: a body `reference_id` sent with a different `Idempotency-Key` header, a
spend's free-form `input` over 4 KiB or holding a NUL character, a daily report whose
`from` is after `to` or whose range exceeds 366 days, and a grant whose `expires_at` is
not in the future.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import schemathesis


def _error_code(response) -> str | None:
    try:
        body = json.loads(response.content)
    except (ValueError, TypeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _conflicting_references(case) -> bool:
    """Both a body `reference_id` and a different `Idempotency-Key`: refused with 400
    `validation_error`, as the header's description in the schema states — a rule between
    a header and a body field, which OpenAPI has no keyword for."""
    header = (case.headers or {}).get("Idempotency-Key")
    body = case.body if isinstance(case.body, dict) else {}
    reference = body.get("reference_id")
    return header is not None and reference is not None and header.strip() != reference


JOB_INPUT_MAX_BYTES = 4096  # wallet.services.JOB_INPUT_MAX_BYTES (no Django import here)


def _has_nul(value) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _oversized_or_nul_job_input(case) -> bool:
    """A spend's free-form `input` object over 4096 bytes as JSON, or holding a NUL
    character in a key or string at any depth: refused with 400 `validation_error`, as
    the field's description states — a size in bytes and a rule on every nested string,
    which JSON Schema cannot express for an arbitrary object."""
    body = case.body if isinstance(case.body, dict) else {}
    if "input" not in body:
        return False
    job_input = body["input"]
    return len(json.dumps(job_input, default=str)) > JOB_INPUT_MAX_BYTES or _has_nul(job_input)


def _grant_expiry_not_in_the_future(case) -> bool:
    """A grant's `expires_at` at or before now: refused with 400 `validation_error`, as
    the field's description states — a rule against the server's clock, which no schema
    can express."""
    if not case.operation.path.endswith("/grants"):
        return False
    body = case.body if isinstance(case.body, dict) else {}
    value = body.get("expires_at")
    if not isinstance(value, str):
        return False
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return True  # a date-time Python cannot read (e.g. a leap second): refused too
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment <= datetime.now(UTC)
    except OverflowError:
        return True


REPORT_MAX_DAYS = 366  # wallet.selectors: a report covers at most 366 days, both ends included


def _report_range_refused(case) -> bool:
    """The daily report's `from` after `to`, or a range over 366 days: refused with 400
    `validation_error`, as the operation's description states — a rule between two
    parameters, which OpenAPI cannot express."""
    if not case.operation.path.endswith("/admin/reports/daily"):
        return False
    query = case.query or {}
    try:
        first, last = date.fromisoformat(query["from"]), date.fromisoformat(query["to"])
    except (KeyError, TypeError, ValueError):
        return False
    return last < first or (last - first).days + 1 > REPORT_MAX_DAYS


@schemathesis.check
def positive_data_is_never_a_validation_error(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if (
        _conflicting_references(case)
        or _oversized_or_nul_job_input(case)
        or _report_range_refused(case)
        or _grant_expiry_not_in_the_future(case)
    ):
        return None
    if response.status_code == 400 and _error_code(response) == "validation_error":
        raise AssertionError(
            "Schema-valid request refused with validation_error: the server enforces a "
            f"rule the schema does not state.\n{response.content[:500]!r}"
        )
    return None
