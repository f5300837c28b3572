"""The finance report over HTTP: `GET /api/v1/admin/reports/daily?from=&to=`.

Thin: the query serializer validates the range, `selectors.daily_report` computes every
figure in the database, the output serializers render it (and describe it in the schema).
"""

from __future__ import annotations

import re
from datetime import date, datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from divine_whispers.api.permissions import has_perm
from divine_whispers.api.schema import error_responses
from wallet import selectors
from wallet.models import Transaction
from wallet.permissions import VIEW_REPORT

_DATE = re.compile(selectors.REPORT_DATE_PATTERN)


class ReportDateField(serializers.Field):
    """A calendar date written exactly `YYYY-MM-DD` (year 2000–2999); nothing coerced."""

    default_error_messages = {
        "invalid": "Enter a date as YYYY-MM-DD (a year from 2000 to 2999).",
    }

    def to_internal_value(self, data: object) -> date:
        if not isinstance(data, str) or not _DATE.match(data):
            self.fail("invalid")
        try:
            return datetime.strptime(data, "%Y-%m-%d").date()
        except ValueError:  # 2026-02-30, month 13, …
            self.fail("invalid")

    def to_representation(self, value: date) -> str:
        return value.isoformat()


class DailyReportQuerySerializer(serializers.Serializer):
    """`from` is a Python keyword, hence the fields built in get_fields."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {"from": ReportDateField(), "to": ReportDateField()}

    def validate(self, attrs: dict) -> dict:
        problem = selectors.report_range_problem(attrs["from"], attrs["to"])
        if problem:
            raise serializers.ValidationError({"to": [problem]}, code="invalid")
        return attrs


def _points(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, help_text=help_text)


class _ReportFiguresSerializer(serializers.Serializer):
    deposited = _points("Points credited by deposits.")
    purchased = _points("Points credited by purchases (purchase rows).")
    granted = _points("Promotional points granted.")
    spent = _points("Points debited by spends (positive).")
    refunded = _points("Points credited by refunds.")
    transferred = _points("Points moved between users (sum of the transfer_in amounts).")
    adjusted_up = _points("Points added by adjustments.")
    adjusted_down = _points("Points removed by adjustments (positive).")
    clawed_back = _points(
        "Points taken back by clawback rows (refunds and disputes of purchases, and debt "
        "repaid from later credits)."
    )
    clawback_reversed = _points(
        "Points given back by clawback_reversal rows (a dispute won, a refund failed)."
    )
    expired = _points("Points expired: the unused remainders of expired lots (breakage).")
    net = serializers.IntegerField(
        help_text="Change of all balances together (the sum of every row's amount): "
        "deposited + purchased + granted − spent + refunded + adjusted_up − adjusted_down "
        "− clawed_back + clawback_reversed − expired (transfers net to zero). "
        "May be negative."
    )
    count = _points("Successful ledger rows (a transfer is two).")
    closing_liability = _points(
        "Sum of all balances at the end (from each wallet's latest balance_after)."
    )
    closing_paid = _points("Paid part of closing_liability (never expires).")
    closing_promotional = _points(
        "Promotional part of closing_liability (granted points not yet spent or expired)."
    )
    debt = _points(
        "Debt all wallets owe at the end: points clawbacks owed minus the clawback rows "
        "booked (what the balances could not cover)."
    )


class ReportDaySerializer(_ReportFiguresSerializer):
    date = serializers.DateField(help_text="The day, in REPORT_TIMEZONE.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        return {"date": fields.pop("date"), **fields}


class ReportTotalsSerializer(_ReportFiguresSerializer):
    opening_liability = _points("Sum of all balances at the start of the first day.")
    opening_debt = _points("Debt all wallets owed at the start of the first day.")


class DailyReportSerializer(serializers.Serializer):
    timezone = serializers.CharField(help_text="The time zone of the days (REPORT_TIMEZONE).")
    days = ReportDaySerializer(many=True, help_text="Every day of the range, oldest first.")
    totals = ReportTotalsSerializer(
        help_text="Sums over the range; closing_liability and debt are the last day's, "
        "opening_liability and opening_debt those before the first day."
    )


_DATE_PARAMETER = {
    "type": OpenApiTypes.DATE,
    "location": OpenApiParameter.QUERY,
    "required": True,
    "pattern": selectors.REPORT_DATE_PATTERN,
}


@extend_schema(tags=["admin"])
class AdminReportViewSet(viewsets.GenericViewSet):
    """Finance staff: daily totals of the ledger."""

    queryset = Transaction.objects.none()
    permission_classes = [IsAuthenticated, has_perm(VIEW_REPORT)]
    # One consistent snapshot of the ledger, within the replica's lag bound
    # (divine_whispers/db/routing.py).
    replica_actions = frozenset({"daily"})

    @extend_schema(
        summary="Daily finance report",
        description=f"Needs the `{VIEW_REPORT}` permission. One entry per day "
        f"from `from` to `to` (both included, at most {selectors.REPORT_MAX_DAYS} days, "
        "`from` ≤ `to`), days in the REPORT_TIMEZONE time zone. Figures count successful "
        "ledger rows only; amounts are non-negative point totals. A range breaking these "
        "rules is `400 validation_error`.",
        parameters=[
            OpenApiParameter(
                "from", description="First day (included), YYYY-MM-DD.", **_DATE_PARAMETER
            ),
            OpenApiParameter(
                "to",
                description=f"Last day (included), YYYY-MM-DD; not before `from`, at most "
                f"{selectors.REPORT_MAX_DAYS - 1} days after it.",
                **_DATE_PARAMETER,
            ),
        ],
        responses={
            200: DailyReportSerializer,
            **error_responses({400: ["validation_error"], 403: ["permission_denied"]}),
        },
    )
    @action(detail=False, methods=["get"])
    def daily(self, request: Request) -> Response:
        query = DailyReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        report = selectors.daily_report(
            first=query.validated_data["from"],
            last=query.validated_data["to"],
            tz=selectors.report_timezone(),
        )
        body = {
            "timezone": report.timezone,
            "days": [day.as_dict() for day in report.days],
            "totals": report.totals,
        }
        return Response(DailyReportSerializer(body).data)
