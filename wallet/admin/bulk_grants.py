"""Bulk grants of promotional points from a CSV file, in the wallet admin ("Bulk grant…").

Finance uploads a file (columns username or user_id, amount, reason, reference, and
optionally expires_at and campaign). Step one parses and checks it and shows a summary
— rows, total points, each row's problems — and books nothing. Its "Confirm" button
carries a signed token (wallet/admin/confirmations.py) binding exactly the checked rows
and the staff member; step two books each good row through `services.grant` with the
row's own reference, one service call (one transaction) per row, so a refused row never
stops the others, and uploading the same file again replays instead of booking twice.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone

from audit.backoffice.links import admin_url
from divine_whispers.errors import DomainError
from divine_whispers.money import (
    CAMPAIGN_MAX_LENGTH,
    REASON_MAX_LENGTH,
    validate_positive_amount,
    validate_reference,
    validate_text,
)
from divine_whispers.points_format import points
from wallet import permissions, services
from wallet.admin import confirmations
from wallet.admin.forms import domain_error_message

KIND = "bulk_grant"
MAX_ROWS = 500
MAX_FILE_BYTES = 512 * 1024
REQUIRED_COLUMNS = ("amount", "reason", "reference")
BULK_TEMPLATE = "admin/wallet/wallet/bulk_grant.html"
DIGITS = re.compile(r"[0-9]+")
MAX_ID = 2**63  # bigint: a larger id cannot be looked up (the database would refuse it)


class BulkGrantUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, comma-separated, a header line.")


@dataclass
class PlannedRow:
    """One line of the file as checked: what would be booked, or why it will not be."""

    line: int
    who: str
    user_id: int | None = None
    amount: int | None = None
    reason: str = ""
    campaign: str = ""
    expires_at: str | None = None  # ISO 8601 with its offset
    reference: str = ""
    problems: list[str] = field(default_factory=list)


class FileProblem(Exception):
    """The file as a whole cannot be read; nothing in it is considered."""


def read_csv(upload: Any) -> list[dict[str, str]]:
    """The file's rows as dicts keyed by lower-case column names (blank lines skipped)."""
    content = upload.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise FileProblem(f"The file is larger than {MAX_FILE_BYTES // 1024} KiB.")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileProblem("The file is not UTF-8 text.") from exc
    reader = csv.reader(io.StringIO(text))
    header = [name.strip().lower() for name in next(reader, [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if "username" not in header and "user_id" not in header:
        missing.insert(0, "username or user_id")
    if missing:
        raise FileProblem(f"Missing column(s): {', '.join(missing)}.")
    rows = [dict(zip(header, (cell.strip() for cell in cells), strict=False)) for cells in reader]
    rows = [row for row in rows if any(row.values())]
    if len(rows) > MAX_ROWS:
        raise FileProblem(f"The file has {len(rows)} rows; at most {MAX_ROWS} per upload.")
    if not rows:
        raise FileProblem("The file has no rows under its header.")
    return rows


def _checked(row: PlannedRow, check: Any, *args: Any, **kwargs: Any) -> Any:
    """`check(...)`'s value; a refusal (bad value, too large) becomes a row's problem."""
    try:
        return check(*args, **kwargs)
    except DomainError as problem:
        row.problems.append(problem.message)
        return None


def _expiry(row: PlannedRow, value: str, now: datetime) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        row.problems.append(f"expires_at {value!r} is not an ISO date-time.")
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)  # the site's time zone, as the grant form
    if moment <= now:
        row.problems.append("expires_at must be in the future.")
        return None
    return moment.isoformat()


def plan_rows(rows: list[dict[str, str]], now: datetime) -> list[PlannedRow]:
    """Each row checked as `services.grant` will check it, users looked up in two
    queries, references unique within the file. Nothing is written."""
    planned, seen = [], {}
    for line, raw in enumerate(rows, start=2):
        row = _plan_row(line, raw, now)
        if row.reference and row.reference in seen:
            row.problems.append(f"reference {row.reference!r} repeats line {seen[row.reference]}.")
        seen.setdefault(row.reference, line)
        planned.append(row)
    _resolve_users(planned, rows)
    return planned


def _plan_row(line: int, raw: dict[str, str], now: datetime) -> PlannedRow:
    row = PlannedRow(line=line, who=raw.get("username") or raw.get("user_id") or "")
    text = raw.get("amount", "")
    if DIGITS.fullmatch(text):
        maximum = settings.WALLET_MAX_TRANSACTION_AMOUNT
        row.amount = _checked(row, validate_positive_amount, int(text), maximum=maximum)
    else:
        row.problems.append(f"amount {text!r} is not a whole number of points.")
    row.reason = (
        _checked(
            row,
            validate_text,
            raw.get("reason"),
            field="reason",
            required=True,
            max_length=REASON_MAX_LENGTH,
        )
        or ""
    )
    row.campaign = (
        _checked(
            row,
            validate_text,
            raw.get("campaign"),
            field="campaign",
            required=False,
            max_length=CAMPAIGN_MAX_LENGTH,
        )
        or ""
    )
    row.expires_at = _expiry(row, raw.get("expires_at", ""), now)
    row.reference = raw.get("reference", "")
    if not row.reference:
        row.problems.append("reference is required (it makes the row idempotent).")
    else:
        _checked(row, validate_reference, row.reference)
    return row


def _user_id(raw: dict[str, str]) -> int | None:
    """The row's user_id if it is a number a database id can be (else: unknown user)."""
    text = raw.get("user_id") or ""
    return int(text) if DIGITS.fullmatch(text) and int(text) < MAX_ID else None


def _resolve_users(planned: list[PlannedRow], rows: list[dict[str, str]]) -> None:
    users = get_user_model().objects
    names = {raw.get("username") for raw in rows if raw.get("username")}
    ids = {_user_id(raw) for raw in rows} - {None}
    by_name = dict(users.filter(username__in=names).values_list("username", "pk"))
    by_id = set(users.filter(pk__in=ids).values_list("pk", flat=True))
    for row, raw in zip(planned, rows, strict=True):
        if raw.get("username"):
            row.user_id = by_name.get(raw["username"])
        elif _user_id(raw) in by_id:
            row.user_id = _user_id(raw)
        if row.user_id is None:
            row.problems.insert(0, f"unknown user {row.who!r}." if row.who else "no user.")


def book_row(row: PlannedRow, actor: Any) -> dict[str, Any]:
    """One row booked by its own `services.grant` call (its own transaction): the
    outcome for the results table."""
    expires_at = datetime.fromisoformat(row.expires_at) if row.expires_at else None
    try:
        result = services.grant(
            user=row.user_id,
            amount=row.amount,
            reason=row.reason,
            campaign=row.campaign,
            expires_at=expires_at,
            actor=actor,
            reference_id=row.reference,
        )
    except DomainError as refusal:
        return {"status": "refused", "text": domain_error_message(refusal)}
    if isinstance(result, services.ApprovalResult):
        approval = result.approval
        status = "approval replayed" if result.replayed else "approval requested"
        return {"status": status, "text": f"approval request #{approval.pk}", "obj": approval}
    row_booked = result.transaction
    status = "replayed" if result.replayed else "booked"
    return {"status": status, "text": f"transaction #{row_booked.pk}", "obj": row_booked}


class BulkGrantMixin:
    """The two pages on the wallet admin: upload + summary, then confirmation + results."""

    def bulk_grant_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("bulk-grant/", view(self.bulk_grant_view), name="wallet_wallet_bulk_grant"),
            path(
                "bulk-grant/confirm/",
                view(self.bulk_grant_confirm_view),
                name="wallet_wallet_bulk_grant_confirm",
            ),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {
            "can_bulk_grant": request.user.has_perm(permissions.GRANT),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    @staticmethod
    def _require_grant(request: HttpRequest) -> None:
        if not request.user.has_perm(permissions.GRANT):
            raise PermissionDenied(permissions.GRANT)

    def bulk_grant_view(self, request: HttpRequest) -> HttpResponse:
        """Step one: upload and summary. Books nothing."""
        self._require_grant(request)
        form = BulkGrantUploadForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
        )
        context: dict[str, Any] = {"form": form}
        if form.is_valid():
            try:
                planned = plan_rows(read_csv(form.cleaned_data["file"]), timezone.now())
            except FileProblem as problem:
                form.add_error("file", str(problem))
            else:
                context.update(self._summary(request, planned))
        status = 400 if form.is_bound and form.errors else 200
        response = self._bulk_page(request, **context)
        response.status_code = status
        return response

    def _summary(self, request: HttpRequest, planned: list[PlannedRow]) -> dict[str, Any]:
        good = [row for row in planned if not row.problems]
        token = confirmations.issue(
            KIND,
            object_id=0,
            staff_id=request.user.pk,
            rows=[asdict(row) for row in planned],
        )
        return {
            "planned": planned,
            "good_count": len(good),
            "bad_count": len(planned) - len(good),
            "total_points": points(sum(row.amount for row in good)),
            "token": token if good else "",
            "threshold": settings.WALLET_APPROVAL_THRESHOLD,
        }

    def bulk_grant_confirm_view(self, request: HttpRequest) -> HttpResponse:
        """Step two (POST): each good row booked once, every row's outcome shown."""
        self._require_grant(request)
        if request.method != "POST":
            return self._bulk_page(request, form=BulkGrantUploadForm(), problem="")
        try:
            plan = confirmations.read(
                request.POST.get("token"), KIND, object_id=0, staff_id=request.user.pk
            )
        except confirmations.ConfirmationError as problem:
            return self._bulk_page(request, form=BulkGrantUploadForm(), problem=str(problem))
        results = []
        for data in plan["rows"]:
            row = PlannedRow(**data)
            if row.problems:
                outcome = {"status": "not booked", "text": " ".join(row.problems)}
            else:
                outcome = book_row(row, request.user)
            if outcome.get("obj") is not None:
                outcome["url"] = admin_url(outcome["obj"])
                if outcome["status"] in ("booked", "approval requested"):
                    self._log_action(request, outcome["obj"], f"Bulk grant: {outcome['text']}")
            results.append({"row": row, **outcome})
        counts: dict[str, int] = {}
        for result in results:
            counts[result["status"]] = counts.get(result["status"], 0) + 1
        return self._bulk_page(request, results=results, counts=sorted(counts.items()))

    def _bulk_page(self, request: HttpRequest, **context: Any) -> HttpResponse:
        return self._render_page(
            request,
            BULK_TEMPLATE,
            title="Bulk grant of promotional points",
            max_rows=MAX_ROWS,
            **context,
        )
