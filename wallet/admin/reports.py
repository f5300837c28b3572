"""The finance report in the back-office: the daily table, a chart, a date range and a
CSV download, for staff holding `wallet.view_report` (group finance).

The figures are the API's (`selectors.daily_report`); this page only renders them. The
chart is drawn by Chart.js (vendored static file) from data passed with `json_script`:
no inline script, so the page works under a Content-Security-Policy without
'unsafe-inline'.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from divine_whispers.points_format import points, signed_points
from wallet import permissions, selectors
from wallet.models import FinanceReport

DEFAULT_DAYS = 30
ROLLUP_AFTER_DAYS = 62  # longer ranges get a table by month above the daily one
LOG_SCALE_RATIO = 20
COLUMN_TITLES = {
    "deposited": "Deposited",
    "purchased": "Purchased",
    "granted": "Granted",
    "spent": "Spent",
    "refunded": "Refunded",
    "transferred": "Transferred",
    "adjusted_up": "Adjusted +",
    "adjusted_down": "Adjusted −",
    "clawed_back": "Clawed back",
    "clawback_reversed": "Clawback reversed",
    "expired": "Expired",
    "net": "Net change",
    "count": "Rows",
    "closing_liability": "Closing liability",
    "closing_paid": "… paid",
    "closing_promotional": "… promotional",
    "debt": "Debt owed",
}


class ReportRangeForm(forms.Form):
    """The same rules as the API: YYYY-MM-DD, from ≤ to, at most 366 days."""

    # Typed as ISO dates whatever the browser's locale (a date picker shows mm/dd/yyyy).
    date_input = forms.DateInput(
        attrs={"placeholder": "YYYY-MM-DD", "size": 11, "pattern": r"\d{4}-\d{2}-\d{2}"},
        format="%Y-%m-%d",
    )
    from_ = forms.DateField(label="From", input_formats=["%Y-%m-%d"], widget=date_input)
    to = forms.DateField(label="To", input_formats=["%Y-%m-%d"], widget=date_input)

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        # The query string says `from` (as the API); a form field cannot be named so.
        if data is not None and "from" in data:
            data = {**data.dict(), "from_": data["from"]}
        super().__init__(data, **kwargs)

    def clean(self) -> dict:
        data = super().clean()
        first, last = data.get("from_"), data.get("to")
        for name, value in (("from_", first), ("to", last)):
            if value is not None and not 2000 <= value.year <= 2999:
                self.add_error(name, "Choose a year from 2000 to 2999.")
        if first and last:
            problem = selectors.report_range_problem(first, last)
            if problem:
                self.add_error("to", problem)
        return data


def default_range() -> tuple[date, date]:
    """The last 30 days, today included, in the report's time zone."""
    today = timezone.now().astimezone(selectors.report_timezone()).date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


@admin.register(FinanceReport)
class FinanceReportAdmin(admin.ModelAdmin):
    """Not a list of rows: its "changelist" is the report page."""

    report_template = "admin/wallet/financereport/report.html"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(permissions.VIEW_REPORT)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("", view(self.report_view), name="wallet_financereport_changelist"),
            path("csv/", view(self.csv_view), name="wallet_financereport_csv"),
        ]

    def _range(self, request: HttpRequest) -> tuple[ReportRangeForm, date | None, date | None]:
        """The form and the chosen days (None when the form is invalid); without any
        parameter, the default range."""
        if not self.has_view_permission(request):
            raise PermissionDenied(permissions.VIEW_REPORT)
        if "from" not in request.GET and "to" not in request.GET:
            first, last = default_range()
            return ReportRangeForm(initial={"from_": first, "to": last}), first, last
        form = ReportRangeForm(request.GET)
        if not form.is_valid():
            return form, None, None
        return form, form.cleaned_data["from_"], form.cleaned_data["to"]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        form, first, last = self._range(request)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Finance report",
            "form": form,
            "timezone": str(selectors.report_timezone()),
            "columns": [COLUMN_TITLES[name] for name in selectors.REPORT_FIGURES],
            # From now, whatever the range: what the liability will lose if nobody spends it.
            "expiring": selectors.expiring_totals(),
        }
        today = default_range()[1]
        context["presets"] = report_presets(today)
        if first is not None and first > today:
            context["future"] = "The range starts after today: there is nothing to report yet."
            first = None
        elif last is not None and last > today:
            context["future"] = f"Days after today ({today.isoformat()}) are not shown."
            last = today
        if first is not None:
            report = selectors.daily_report(first=first, last=last, tz=selectors.report_timezone())
            context.update(
                report=report,
                rows=[_row(day.as_dict()) for day in report.days],
                months=monthly_rollup(report) if len(report.days) > ROLLUP_AFTER_DAYS else [],
                totals=_row(report.totals),
                chart=_chart_data(report),
                csv_url=reverse("admin:wallet_financereport_csv")
                + f"?from={first.isoformat()}&to={last.isoformat()}",
            )
        request.current_app = self.admin_site.name
        status = 200 if form.is_valid() or not form.is_bound else 400
        return TemplateResponse(request, self.report_template, context, status=status)

    def csv_view(self, request: HttpRequest) -> HttpResponse:
        _, first, last = self._range(request)
        if first is None or last is None:
            return HttpResponse(
                "Invalid range: from and to are YYYY-MM-DD, from ≤ to, at most 366 days.\n",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        report = selectors.daily_report(first=first, last=last, tz=selectors.report_timezone())
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"finance-report_{first.isoformat()}_{last.isoformat()}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        writer = csv.writer(response)
        writer.writerow(["date", *selectors.REPORT_FIGURES])
        for day in report.days:
            figures = day.as_dict()
            writer.writerow([day.date.isoformat(), *(figures[n] for n in selectors.REPORT_FIGURES)])
        totals = report.totals
        writer.writerow(["total", *(totals[n] for n in selectors.REPORT_FIGURES)])
        writer.writerow(["opening_liability", totals["opening_liability"]])
        writer.writerow(["opening_debt", totals["opening_debt"]])
        writer.writerow(["timezone", report.timezone])
        return response


def _row(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures as the table shows them: thousands separators; the net change signed."""
    cells = []
    for name in selectors.REPORT_FIGURES:
        value = figures[name]
        cells.append(signed_points(value) if name == "net" else points(value))
    return {"date": figures.get("date"), "cells": cells}


def report_presets(today: date) -> list[tuple[str, date, date]]:
    """Ranges staff ask for most, ending today at the latest: (label, from, to)."""
    month_start = today.replace(day=1)
    last_month_end = month_start - timedelta(days=1)
    quarter_start = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    last_quarter_end = quarter_start - timedelta(days=1)
    last_quarter_start = last_quarter_end.replace(
        month=(last_quarter_end.month - 1) // 3 * 3 + 1, day=1
    )
    return [
        ("Last 30 days", today - timedelta(days=DEFAULT_DAYS - 1), today),
        ("This month", month_start, today),
        ("Last month", last_month_end.replace(day=1), last_month_end),
        ("This quarter", quarter_start, today),
        ("Last quarter", last_quarter_start, last_quarter_end),
        ("Last 12 months", today - timedelta(days=364), today),
    ]


def monthly_rollup(report: selectors.DailyReport) -> list[dict[str, Any]]:
    """The days summed by calendar month (closing liability: the month's last day), for
    ranges too long to read day by day."""
    months: dict[tuple[int, int], list[selectors.ReportDay]] = {}
    for day in report.days:
        months.setdefault((day.date.year, day.date.month), []).append(day)
    rows = []
    for (year, month), days in months.items():
        figures = {
            name: sum(getattr(day, name) for day in days) for name in selectors.REPORT_AMOUNTS
        }
        figures["count"] = sum(day.count for day in days)
        # The closing figures are the month's last day's, not a sum.
        for name in ("closing_liability", "closing_paid", "closing_promotional", "debt"):
            figures[name] = getattr(days[-1], name)
        rows.append({**_row(figures), "month": f"{year}-{month:02d}", "days": len(days)})
    return rows


def dwarfed(series: dict[str, list[int]]) -> bool:
    """Whether one day's flow dwarfs the others (the largest over 20 times the median of
    the days that moved): then the chart uses a log scale, or every other bar is flat."""
    values = sorted(value for values in series.values() for value in values if value > 0)
    if len(values) < 3:
        return False
    return values[-1] > LOG_SCALE_RATIO * values[len(values) // 2]


def _chart_data(report: selectors.DailyReport) -> dict[str, Any]:
    """What finance_report.js draws: flows per day (bars) and the liability (line)."""
    series = {
        name: [getattr(day, name) for day in report.days]
        for name in (
            "deposited",
            "purchased",
            "granted",
            "spent",
            "refunded",
            "adjusted_up",
            "adjusted_down",
            "clawed_back",
            "clawback_reversed",
            "expired",
        )
    }
    return {
        "labels": [day.date.isoformat() for day in report.days],
        "log_scale": dwarfed(series),
        "series": series,
        "titles": {name: COLUMN_TITLES[name] for name in selectors.REPORT_FIGURES},
        "liability": [day.closing_liability for day in report.days],
    }
