"""Fixtures of the purchase tests: a package on sale, a buyer with an API client, and a
purchase started through the API against localstripe."""

from __future__ import annotations

import pytest

from wallet.models import PointPackage


@pytest.fixture
def package(db):
    return PointPackage.objects.create(
        code="starter", name="Starter", points=1000, price=999, currency="usd"
    )


@pytest.fixture
def buyer_client(user, client_for):
    return client_for(user)


@pytest.fixture
def start(buyer_client, package, stripe_local):
    """`start(reference=None)`: POST /purchases for the package; returns the purchase body."""

    def _start(reference: str | None = None, code: str = "starter") -> dict:
        body = {"package": code}
        if reference is not None:
            body["reference_id"] = reference
        response = buyer_client.post("/api/v1/purchases", body, format="json")
        assert response.status_code in (200, 201), response.content
        return response.json()["purchase"]

    return _start
