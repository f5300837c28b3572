"""The product's URLs plus /peer/withdraw (bench only)."""

from django.urls import include, path

from bench.peer.views import PeerWithdrawView

urlpatterns = [
    path("peer/withdraw", PeerWithdrawView.as_view()),
    path("", include("divine_whispers.urls")),
]
