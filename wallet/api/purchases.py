"""Buying points: the packages on sale, and the buyer's own purchases.

`POST /purchases` records a pending purchase and asks the provider for a PaymentIntent at
the package's server-side price; the app confirms it with the client secret. Points are
credited only when the provider confirms the payment (webhook or reconciliation), never
by this endpoint. Reads are scoped to the requesting user: another user's purchase is 404.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from divine_whispers.api.fields import ReferenceField
from divine_whispers.api.idempotency import (
    IDEMPOTENCY_KEY_PARAMETER,
    created_or_replayed,
    reference_for,
)
from divine_whispers.api.pagination import NewestFirstCursorPagination
from divine_whispers.api.schema import error_responses
from divine_whispers.api.serializers import FieldsOnceMixin, StrictInputSerializer
from wallet import services
from wallet.api.fields import PackageCodeField
from wallet.api.writes import validated, write_responses
from wallet.models import PointPackage, Purchase


class PackageSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    class Meta:
        model = PointPackage
        fields = ["code", "name", "points", "price", "currency"]
        read_only_fields = fields


class PurchaseSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    package = serializers.SlugRelatedField(slug_field="code", read_only=True)
    amount = serializers.IntegerField(read_only=True, help_text="Minor units of `currency`.")

    class Meta:
        model = Purchase
        fields = [
            "id",
            "package",
            "points",
            "amount",
            "currency",
            "status",
            "client_secret",
            "provider",
            "provider_payment_id",
            "created_at",
        ]
        read_only_fields = fields


class PurchaseResponseSerializer(serializers.Serializer):
    purchase = PurchaseSerializer()


class PurchaseInputSerializer(StrictInputSerializer):
    package = PackageCodeField(
        max_length=64, help_text="A package code (`GET /packages` lists the active ones)."
    )
    reference_id = ReferenceField(required=False)


@extend_schema(tags=["purchases"])
class PackageViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = PackageSerializer
    pagination_class = None
    queryset = PointPackage.objects.filter(active=True).order_by("price", "code")

    @extend_schema(
        summary="Point packages on sale, with their prices",
        responses={200: PackageSerializer(many=True), **error_responses()},
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)


@extend_schema(tags=["purchases"])
class PurchaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PurchaseSerializer
    pagination_class = NewestFirstCursorPagination
    queryset = Purchase.objects.none()
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[Purchase]:
        return Purchase.objects.filter(user_id=self.request.user.pk).select_related("package")

    @extend_schema(
        summary="Start buying a package",
        description="Records a `pending` purchase and creates the provider's PaymentIntent "
        "for the package's price (never a price the client sends); confirm it with "
        "`client_secret`. The points are credited once the provider confirms the payment.",
        request=PurchaseInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses=write_responses(
            PurchaseResponseSerializer,
            {
                400: ["validation_error", "inactive_package"],
                409: ["request_in_progress"],
                503: ["provider_unavailable"],
            },
        ),
    )
    def create(self, request: Request) -> Response:
        data = validated(PurchaseInputSerializer, request)
        result = services.start_purchase(
            user=request.user,
            package=data["package"],
            reference_id=reference_for(request, data.get("reference_id")),
        )
        body = {"purchase": PurchaseSerializer(result.purchase).data}
        return created_or_replayed(body, replayed=result.replayed)

    @extend_schema(
        summary="Your purchases, newest first (cursor-paginated)",
        responses={
            200: PurchaseSerializer(many=True),
            **error_responses({400: ["validation_error"]}),
        },
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="One of your purchases",
        responses={200: PurchaseSerializer, **error_responses({404: ["not_found"]})},
    )
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return super().retrieve(request, *args, **kwargs)
