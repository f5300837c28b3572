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
COLUMN_TITLES = {
    "deposited": "Deposited",
    "granted": "Granted",
    "spent": "Spent",
    "refunded": "Refunded",
    "transferred": "Transferred",
    "adjusted_up": "Adjusted +",
    "adjusted_down": "Adjusted −",
    "expired": "Expired",
    "net": "Net change",
    "count": "Rows",
    "closing_liability": "Closing liability",
    "closing_paid": "… paid",
    "closing_promotional": "… promotional",
}


class ReportRangeForm(forms.Form):
    """The same rules as the API: YYYY-MM-DD, from ≤ to, at most 366 days."""

    date_input = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
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
            raise PermissionDenied
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
        }
        if first is not None:
            report = selectors.daily_report(first=first, last=last, tz=selectors.report_timezone())
            context.update(
                report=report,
                rows=[_row(day.as_dict()) for day in report.days],
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
        writer.writerow(["timezone", report.timezone])
        return response


def _row(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures as the table shows them: thousands separators; the net change signed."""
    cells = []
    for name in selectors.REPORT_FIGURES:
        value = figures[name]
        cells.append(signed_points(value) if name == "net" else points(value))
    return {"date": figures.get("date"), "cells": cells}


def _chart_data(report: selectors.DailyReport) -> dict[str, Any]:
    """What finance_report.js draws: flows per day (bars) and the liability (line)."""
    return {
        "labels": [day.date.isoformat() for day in report.days],
        "series": {
            name: [getattr(day, name) for day in report.days]
            for name in (
                "deposited",
                "granted",
                "spent",
                "refunded",
                "adjusted_up",
                "adjusted_down",
                "expired",
            )
        },
        "titles": {name: COLUMN_TITLES[name] for name in selectors.REPORT_FIGURES},
        "liability": [day.closing_liability for day in report.days],
    }
