"""CSV export of an admin changelist: every row the list selects under its current
filters, search and ordering (not just the page shown), streamed.

Constant memory however many rows: the rows come from a server-side cursor
(`QuerySet.iterator(chunk_size)`, EXPORT_CHUNK_SIZE rows per round trip) inside one
read-only transaction (so PostgreSQL streams them instead of materialising a WITH HOLD
cursor), and each CSV line is handed to the server as soon as it is written.
Whoever may view the list may export it; each export is an audit event.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone

from audit.services import record_system_event
from divine_whispers.db.bounds import database_bounds

# A cell a spreadsheet would run as a formula ("CSV injection") starts with one of these.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write returns the line: csv.writer → generator."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: ISO times in UTC, JSON for structures, and text that a
    spreadsheet would evaluate as a formula prefixed with an apostrophe. Numbers stay
    numbers (a negative amount is not a formula). Most cells are ints: tested first."""
    kind = type(value)
    if kind is int:
        return value
    if kind is str:
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, (dict, list)):
        return csv_cell(json.dumps(value, sort_keys=True))
    return value


class CsvExportMixin:
    """Adds an "Export CSV" button and view to a ModelAdmin's changelist.

    `csv_columns` lists (header, field path for `values_list`); paths may follow
    foreign keys (`user__username`).
    """

    change_list_template = "admin/backoffice/csv_export_change_list.html"
    csv_columns: tuple[tuple[str, str], ...] = ()

    def get_urls(self) -> list:
        opts = self.opts
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_csv_view),
                name=f"{opts.app_label}_{opts.model_name}_export_csv",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        opts = self.opts
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_export_csv")
        query = request.GET.copy()
        query.pop("p", None)  # the page: an export has every page
        extra = {"export_csv_url": f"{url}?{query.urlencode()}" if query else url}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def export_csv_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        opts = self.opts
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            changelist_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
            return HttpResponseRedirect(f"{changelist_url}?e=1")
        queryset = changelist.queryset.values_list(*(field for _, field in self.csv_columns))
        record_system_event(
            action="admin.export_csv",
            actor=request.user,
            metadata={"model": opts.label_lower, "query": request.GET.urlencode()},
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(
            stream_csv([header for header, _ in self.csv_columns], queryset),
            content_type="text/csv; charset=utf-8",
        )
        filename = f"{opts.model_name}-export-{stamp}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


def stream_csv(headers: list[str], rows: Any, chunk_size: int | None = None) -> Iterator[str]:
    """CSV text of `rows` (a values_list queryset), read through a server-side cursor
    `chunk_size` rows at a time and handed on in pieces of as many rows (one piece per
    line would cost more in the response machinery than the CSV itself)."""
    size = chunk_size or settings.EXPORT_CHUNK_SIZE
    writer = csv.writer(_Echo())
    cell: Callable[[Any], Any] = csv_cell
    yield writer.writerow(headers)
    # Streamed after the view returned: the export's own bounds (a slow download leaves
    # the transaction idle between chunks), not the request's.
    with database_bounds("export"), transaction.atomic():
        piece: list[str] = []
        for row in rows.iterator(chunk_size=size):
            piece.append(writer.writerow([cell(value) for value in row]))
            if len(piece) >= size:
                yield "".join(piece)
                piece = []
        if piece:
            yield "".join(piece)
