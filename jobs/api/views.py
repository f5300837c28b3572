"""A user's own jobs, cancelling a pending one, and the job types on sale.

Every query is scoped to the requesting user, so another user's job is a 404 — the API
never confirms that it exists.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from divine_whispers.api.idempotency import REPLAYED_HEADER
from divine_whispers.api.pagination import NewestFirstCursorPagination
from divine_whispers.api.schema import error_responses
from divine_whispers.errors import JobNotCancellable
from jobs.api.serializers import JobFilterSerializer, JobSerializer, JobTypeSerializer
from jobs.models import Job, JobStatus, JobType
from wallet import services
from wallet.api.serializers import TransactionSerializer

CANCEL_REASON = "Cancelled by its owner"

CancelResponseSerializer = inline_serializer(
    name="JobCancelResponse",
    fields={
        "job": JobSerializer(),
        "refund": TransactionSerializer(allow_null=True),
    },
)


@extend_schema(tags=["jobs"])
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    pagination_class = NewestFirstCursorPagination
    queryset = Job.objects.none()
    lookup_value_regex = r"[0-9]+"
    # Read-only actions that may read from the replica (divine_whispers/db/routing.py).
    replica_actions = frozenset({"list", "retrieve"})

    def get_queryset(self) -> QuerySet[Job]:
        queryset = Job.objects.filter(user_id=self.request.user.pk).select_related("job_type")
        if self.action == "list":
            filters = JobFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            if "status" in filters.validated_data:
                queryset = queryset.filter(status=filters.validated_data["status"])
        return queryset

    @extend_schema(
        summary="Your jobs, newest first",
        parameters=[JobFilterSerializer],
        responses={200: JobSerializer(many=True), **error_responses({400: ["validation_error"]})},
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="One of your jobs",
        responses={200: JobSerializer, **error_responses({404: ["not_found"]})},
    )
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Cancel a pending job (fully refunded)",
        description=(
            "A `pending` job becomes `cancelled` and its spend is refunded in full, in one "
            "DB transaction. Repeating the call replays the same answer (200 with "
            "`Idempotent-Replayed: true`); a running or finished job is 409."
        ),
        request=None,
        responses={
            200: OpenApiResponse(CancelResponseSerializer, description="Cancelled (or replay)."),
            **error_responses({404: ["not_found"], 409: ["job_not_cancellable"]}),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        result = services.refund_job(
            job_id=job.pk,
            reason=CANCEL_REASON,
            actor=request.user,
            final_status=JobStatus.CANCELLED,
            allowed_statuses=(JobStatus.PENDING,),
        )
        if result.replayed and result.job.status != JobStatus.CANCELLED:
            # The job's automatic refund (it failed) came first: it was never cancelled.
            raise JobNotCancellable(job_id=job.pk, status=result.job.status)
        body = {
            "job": JobSerializer(result.job).data,
            "refund": TransactionSerializer(result.transaction).data
            if result.transaction
            else None,
        }
        headers = {REPLAYED_HEADER: "true"} if result.replayed else None
        return Response(body, headers=headers)


@extend_schema(tags=["jobs"])
class JobTypeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = JobTypeSerializer
    pagination_class = None
    # Read-only actions that may read from the replica (divine_whispers/db/routing.py).
    replica_actions = frozenset({"list"})
    queryset = JobType.objects.filter(active=True).order_by("code")

    @extend_schema(
        summary="Job types on sale, with their prices",
        responses={200: JobTypeSerializer(many=True), **error_responses()},
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)
