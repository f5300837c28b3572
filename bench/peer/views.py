"""A plain DRF endpoint over dj-wallet: token authentication, a serializer for the input
and one for the output, `WalletService.withdraw` in between."""

from __future__ import annotations

from dj_wallet.models import Transaction as PeerTransaction
from dj_wallet.models import Wallet as PeerWallet
from dj_wallet.services.common import WalletService
from django.contrib.contenttypes.models import ContentType
from rest_framework import serializers, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class WithdrawInput(serializers.Serializer):
    amount = serializers.IntegerField(min_value=1)


class PeerTransactionOutput(serializers.ModelSerializer):
    class Meta:
        model = PeerTransaction
        fields = "__all__"


class PeerWithdrawView(APIView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request: Request) -> Response:
        data = WithdrawInput(data=request.data)
        data.is_valid(raise_exception=True)
        wallet = PeerWallet.objects.get(
            holder_type=ContentType.objects.get_for_model(request.user),
            holder_id=request.user.pk,
            slug="default",
        )
        txn = WalletService.withdraw(wallet, data.validated_data["amount"])
        return Response(PeerTransactionOutput(txn).data, status=status.HTTP_201_CREATED)
