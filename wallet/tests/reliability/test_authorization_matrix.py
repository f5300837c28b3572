"""Authorization matrix: every route of the URL resolver × every kind of caller × methods.

Callers: anonymous, the user who owns the objects in the URL, another user, support,
finance and a superuser. Every cell must answer the contract's status: 401 for an
anonymous caller of the API, 403 without the staff permission, 404 for another user's
object, 405 for a method the route does not have, else the route's 2xx.

The routes are read from Django's URL resolver. A route that is not classified below
fails `test_every_route_is_classified`, so a new endpoint cannot be forgotten.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.urls import URLResolver, get_resolver

from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import PointPackage, Purchase
from wallet.tests.api_helpers import staff_in
from wallet.tests.factories import StaffFactory, UserFactory, payment_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_velocity_limit")]

# `payments`: the payment service account (not staff, `wallet.deposit_points` alone).
ROLES = ("anonymous", "user", "other", "payments", "support", "finance", "superuser")
AUTHENTICATED = ROLES[1:]
METHODS = ("get", "post", "put", "patch", "delete")


def everyone(status: int) -> dict[str, int]:
    """Any authenticated caller, on their own wallet."""
    return {"anonymous": 401} | dict.fromkeys(AUTHENTICATED, status)


def owner_only(status: int) -> dict[str, int]:
    """An object of `user`: anybody else gets 404 (its existence is not revealed)."""
    return {"anonymous": 401, "user": status} | dict.fromkeys(AUTHENTICATED[1:], 404)


def staff(status: int, *allowed: str) -> dict[str, int]:
    return {"anonymous": 401} | {r: status if r in allowed else 403 for r in AUTHENTICATED}


def public(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


@dataclass
class Route:
    """A route's concrete URL (built from the world) and its expected status per method."""

    url: Callable[[dict], str]
    methods: dict[str, dict[str, int]]
    # For methods the route lacks: who is stopped before the method is even looked at.
    gate: dict[str, int] = field(default_factory=dict)
    body: Callable[[dict, str, str], dict] | None = None


def _gate(expected: dict[str, int]) -> dict[str, int]:
    return {role: code for role, code in expected.items() if code in (401, 403)}


REFUNDERS = ("support", "finance", "superuser")
ADJUSTERS = ("finance", "superuser")
GRANTERS = ("finance", "superuser")
VIEWERS = ("support", "finance", "superuser")


def _bodies(world: dict, role: str, name: str) -> dict:
    tag = f"{role}-{next(world['counter'])}"
    return {
        "wallet-deposit": {"user_id": world["user"].pk, "amount": 10, "reference_id": f"m-{tag}"},
        "wallet-spend": {"job_type": "fortune"},
        "wallet-transfer": {
            "to_user_id": (world["other"] if role == "user" else world["user"]).pk,
            "amount": 1,
        },
        "admin-user-points": {"amount": 5, "reason": "matrix"},
        "admin-user-grant-grants": {"amount": 5, "reason": "matrix"},
        "admin-transaction-refund": {"amount": 1, "reason": "matrix"},
        "admin-approval-reject": {"reason": "matrix"},
    }.get(name, {})


API = "/api/v1"
ROUTES: dict[str, Route] = {
    "transaction-list": Route(lambda w: f"{API}/wallet/transactions", {"get": everyone(200)}),
    "transaction-detail": Route(
        lambda w: f"{API}/wallet/transactions/{w['spend'].pk}", {"get": owner_only(200)}
    ),
    "wallet-balance": Route(lambda w: f"{API}/wallet/balance", {"get": everyone(200)}),
    # Only the payment service account deposits: staff lack the right, and a superuser, who
    # holds every right, is refused by the service (403 after the method is known: 405).
    "wallet-deposit": Route(
        lambda w: f"{API}/wallet/deposit",
        {"post": staff(201, "payments")},
        gate=_gate(staff(201, "payments", "superuser")),
    ),
    "wallet-spend": Route(lambda w: f"{API}/wallet/spend", {"post": everyone(201)}),
    "wallet-transfer": Route(lambda w: f"{API}/wallet/transfer", {"post": everyone(201)}),
    "job-list": Route(lambda w: f"{API}/jobs", {"get": everyone(200)}),
    "job-detail": Route(lambda w: f"{API}/jobs/{w['job'].pk}", {"get": owner_only(200)}),
    "job-cancel": Route(
        lambda w: f"{API}/jobs/{w['fresh_job']().pk}/cancel", {"post": owner_only(200)}
    ),
    "job-type-list": Route(lambda w: f"{API}/job-types", {"get": everyone(200)}),
    "package-list": Route(lambda w: f"{API}/packages", {"get": everyone(200)}),
    # POST without a body: refused before the provider is asked (400 validation_error).
    "purchase-list": Route(
        lambda w: f"{API}/purchases", {"get": everyone(200), "post": everyone(400)}
    ),
    "purchase-detail": Route(
        lambda w: f"{API}/purchases/{w['purchase'].pk}", {"get": owner_only(200)}
    ),
    # The provider's webhook: no API authentication; unsigned → 400 invalid_signature.
    "stripe-webhook": Route(lambda w: "/webhooks/stripe", {"post": public(400)}),
    "admin-user-points": Route(
        lambda w: f"{API}/admin/users/{w['user'].pk}/points", {"put": staff(201, *ADJUSTERS)}
    ),
    "admin-user-grant-grants": Route(
        lambda w: f"{API}/admin/users/{w['user'].pk}/grants", {"post": staff(201, *GRANTERS)}
    ),
    "admin-wallet-list": Route(lambda w: f"{API}/admin/wallets", {"get": staff(200, *VIEWERS)}),
    "admin-transaction-refund": Route(
        lambda w: f"{API}/admin/transactions/{w['fresh_spend']().pk}/refund",
        {"post": staff(201, *REFUNDERS)},
    ),
    # Four eyes: reading needs adjust or approve rights, deciding needs approve rights;
    # every request here was asked for by a third staff member (never the caller).
    "admin-approval-list": Route(
        lambda w: f"{API}/admin/approvals", {"get": staff(200, *ADJUSTERS)}
    ),
    "admin-approval-detail": Route(
        lambda w: f"{API}/admin/approvals/{w['approval'].pk}", {"get": staff(200, *ADJUSTERS)}
    ),
    "admin-approval-approve": Route(
        lambda w: f"{API}/admin/approvals/{w['fresh_approval']().pk}/approve",
        {"post": staff(201, *ADJUSTERS)},
    ),
    "admin-approval-reject": Route(
        lambda w: f"{API}/admin/approvals/{w['fresh_approval']().pk}/reject",
        {"post": staff(200, *ADJUSTERS)},
    ),
    "admin-report-daily": Route(
        lambda w: f"{API}/admin/reports/daily?from=2026-01-01&to=2026-01-31",
        {"get": staff(200, "finance", "superuser")},
    ),
    "schema": Route(lambda w: "/api/schema/", {"get": public(200)}, gate={}),
    "swagger-ui": Route(lambda w: "/api/docs/", {"get": public(200)}, gate={}),
    "healthz": Route(lambda w: "/healthz", {"get": public(200)}),
    # The back-office's icon: a permanent redirect to its static file, for anyone.
    "favicon": Route(lambda w: "/favicon.ico", {"get": public(301)}),
    # Prometheus metrics: only `Bearer METRICS_TOKEN` or METRICS_ALLOWED_IPS (both empty by
    # default); an API token is no credential here (a header present but wrong → 403).
    "metrics": Route(
        lambda w: "/metrics", {"get": {"anonymous": 401} | dict.fromkeys(AUTHENTICATED, 403)}
    ),
    # The root: links to the API docs and the admin.
    "home": Route(lambda w: "/", {"get": public(200)}),
    # Session login page of the browsable API (Django's views, HTML forms with CSRF).
    "login": Route(lambda w: "/api/auth/login/", {"get": public(200)}),
    "logout": Route(lambda w: "/api/auth/logout/", {}),
    # The catch-all under /api/: a JSON 404 for any method and any caller.
    "api-not-found": Route(
        lambda w: f"{API}/no/such/endpoint",
        {m: public(404) for m in METHODS},
    ),
}
# Routes outside the REST API (Django views) whose other methods the contract does not
# govern: only "never a 5xx" is asserted for them.
NON_API = {"favicon", "healthz", "home", "login", "logout", "metrics", "stripe-webhook"}
for _name, _route in ROUTES.items():
    if _name not in NON_API and not _route.gate and _name not in ("schema", "swagger-ui"):
        _route.gate = _gate(next(iter(_route.methods.values()), {}))


def resolver_routes() -> dict[str, str]:
    """{route name: pattern} of every route, admin site included."""
    found: dict[str, str] = {}

    def walk(patterns, prefix: str) -> None:
        for item in patterns:
            if isinstance(item, URLResolver):
                walk(item.url_patterns, prefix + str(item.pattern))
            else:
                full = prefix + str(item.pattern)
                name = item.name or ("api-not-found" if full.startswith("^api") else full)
                if full.startswith("admin/"):
                    name = f"admin:{item.name or full}"
                found[name] = full

    walk(get_resolver().url_patterns, "")
    return found


def test_every_route_is_classified():
    """Adding a route without adding it to this matrix fails here."""
    routes = resolver_routes()
    unclassified = {
        name: pattern
        for name, pattern in routes.items()
        if name not in ROUTES and not name.startswith("admin:")
    }
    assert unclassified == {}, f"classify these routes in the authorization matrix: {unclassified}"
    assert set(ROUTES) <= set(routes), set(ROUTES) - set(routes)


@pytest.fixture
def world(settings, client_for, api_client):
    settings.API_THROTTLE_RATE = "100000/minute"
    settings.API_ANON_THROTTLE_RATE = "100000/minute"
    JobTypeFactory(code="fortune", price=5)
    people = {
        "user": UserFactory(username="matrix-user"),
        "other": UserFactory(username="matrix-other"),
        "support": staff_in("support", "matrix-support"),
        "finance": staff_in("finance", "matrix-finance"),
        "superuser": StaffFactory(username="matrix-root", is_superuser=True),
        "payments": payment_account(),
    }
    for person in people.values():
        # The system seeds (no actor): the payment account may not credit its own wallet.
        services.deposit(user=person, amount=10_000, reference_id=f"mx-{person.pk}", actor=None)
    owner = people["user"]
    spend, job = services.spend(user=owner, job_type="fortune")
    package = PointPackage.objects.create(code="matrix", name="Matrix", points=10, price=100)
    purchase = Purchase.objects.create(
        user=owner, package=package, points=10, amount=100, currency="usd"
    )

    def fresh_spend():
        return services.spend(user=owner, job_type="fortune").transaction

    def fresh_job():
        return services.spend(user=owner, job_type="fortune").job

    requester = staff_in("finance", "matrix-requester")

    def fresh_approval():
        return services.adjust(user=owner, amount=20_000, reason="matrix", actor=requester).approval

    clients = {role: client_for(person) for role, person in people.items()}
    clients["anonymous"] = api_client
    return {
        **people,
        "spend": spend,
        "job": job,
        "purchase": purchase,
        "fresh_spend": fresh_spend,
        "fresh_job": fresh_job,
        "approval": fresh_approval(),
        "fresh_approval": fresh_approval,
        "clients": clients,
        "counter": itertools.count(),
    }


def _call(world: dict, name: str, role: str, method: str):
    route = ROUTES[name]
    client = world["clients"][role]
    body = _bodies(world, role, name)
    return getattr(client, method)(route.url(world), body, format="json")


def _expected(name: str, role: str, method: str) -> int | None:
    route = ROUTES[name]
    if method in route.methods:
        return route.methods[method][role]
    if name in NON_API:
        return None  # outside the contract: only "no 5xx"
    return route.gate.get(role, 405)


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_authorization_matrix(world, name):
    mismatches = []
    for role, method in itertools.product(ROLES, METHODS):
        response = _call(world, name, role, method)
        expected = _expected(name, role, method)
        status = response.status_code
        if status >= 500 or (expected is not None and status != expected):
            mismatches.append(f"{method.upper()} {name} as {role}: {status}, expected {expected}")
        if (
            status >= 400
            and name not in NON_API
            and response.get("Content-Type", "").startswith("application/json")
        ):
            assert set(response.json()) == {"error"}, response.content[:300]
    assert mismatches == [], "\n".join(mismatches)


def test_no_admin_site_page_is_reachable_without_staff_login(world):
    """Every Django admin route: anonymous and plain users are sent to the login page."""
    checked = 0
    for name, pattern in resolver_routes().items():
        if not name.startswith("admin:") or name in ("admin:login", "admin:logout"):
            continue
        url = "/" + _concrete(pattern)
        for role in ("anonymous", "user"):
            client = world["clients"][role]
            client.credentials()  # the admin uses sessions; a token means nothing there
            response = client.get(url)
            assert response.status_code in (302, 404), (url, role, response.status_code)
            if response.status_code == 302:
                assert "/admin/login/" in response["Location"], (url, role, response["Location"])
            checked += 1
    assert checked > 20


def _concrete(pattern: str) -> str:
    """A URL for an admin route pattern: every path parameter becomes `1`."""
    import re

    text = pattern.replace("^", "").replace("$", "")
    text = re.sub(r"<(?:\w+:)?\w+>", "1", text)
    text = re.sub(r"\(\?P<\w+>[^)]*\)", "1", text)
    return text.replace("\\", "")
