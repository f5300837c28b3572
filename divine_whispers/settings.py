"""Settings for Divine Whispers, read from the environment via django-environ.

Every knob that differs between a laptop and production (database, cache, secrets,
money limits) comes from an environment variable so that several app servers and
job workers started with the same environment agree on everything.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ

from divine_whispers.api.config import rest_framework_settings, spectacular_settings
from divine_whispers.cache_guard import cache_options
from divine_whispers.db.config import apply_bounds, apply_transaction_pooling, replica_database
from divine_whispers.durations import parse_duration
from divine_whispers.observability.logs import logging_config
from divine_whispers.production import refuse_insecure_production

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# --- Production configuration (hardening) -------------------------------------------
# With DEBUG off the service refuses to start (any manage.py command, gunicorn, the
# worker) when SECRET_KEY, AUDIT_HMAC_KEY or DATABASE_URL is unset or a development value
# from the source: see divine_whispers/production.py. With DEBUG on, these development
# values fill the gaps (`make run`); they all start with "insecure-dev-". They equal the
# values scripts/run.sh exports, so a `DEBUG=1 manage.py …` command run beside `make run`
# (e.g. issue_token, which writes an audit event) signs with the same audit key.
DEV_SECRET_KEY = "insecure-dev-make-run-secret-key-for-this-laptop-only-0000"
DEV_AUDIT_HMAC_KEY = "insecure-dev-make-run-audit-key"
if not DEBUG:
    refuse_insecure_production(os.environ)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "audit",
    "wallet",
    "jobs",
]

# Auth-from-session, messages and the CSP header come from
# divine_whispers/api/token_stack.py: Django's and django-csp's own middlewares, passed
# straight through by API-key requests under /api/v1/ (which never use a session); the
# admin, the browsable API and session logins run them as before (docs/performance.md).
# The session middleware itself stays Django's (check --deploy names it; it loads a
# session only when something reads it, which nothing does for a token request).
MIDDLEWARE = [
    # Outermost: every response, whichever middleware below built it, gets the header.
    "divine_whispers.http_headers.PermissionsPolicyMiddleware",
    "divine_whispers.request_context.RequestContextMiddleware",
    "divine_whispers.observability.requests.ObservabilityMiddleware",
    "divine_whispers.db.routing.ReadRoutingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "divine_whispers.api.token_stack.AuthenticationMiddleware",
    "divine_whispers.api.token_stack.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "divine_whispers.api.token_stack.CSPMiddleware",
    "divine_whispers.http_headers.ApiNoStoreMiddleware",
]

ROOT_URLCONF = "divine_whispers.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The one points-formatting library (`{% load points_format %}`), and the admin
            # home page's count of approval requests waiting (`backoffice_home`).
            "libraries": {
                "points_format": "divine_whispers.points_format",
                "backoffice_home": "wallet.admin.home",
            },
        },
    },
]

WSGI_APPLICATION = "divine_whispers.wsgi.application"


def _database_from_env() -> dict:
    """PostgreSQL when DATABASE_URL is set, else an embedded SQLite file.

    SQLite runs with IMMEDIATE transactions so concurrent writers queue on the
    database lock instead of failing with "database is locked" half-way through.
    """
    if env.str("DATABASE_URL", default=""):
        database = env.db("DATABASE_URL")
        _connection_reuse(database)
        return database
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env.str("SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }


# --- Database connections (API speed) -----------------------------------------------------
# Persistent connections are the production default: with CONN_MAX_AGE=0 every request
# opened a new PostgreSQL connection (fork of a backend, authentication) and the HTTP spend
# ran at 0.09 × the service's speed. CONN_HEALTH_CHECKS pings a reused connection once
# per request before its first query, so a connection the server dropped (restart,
# failover, idle timeout) is replaced instead of failing the request. Django 5.2's psycopg
# pool (DATABASE_POOL_SIZE > 0, connections per process) was measured against this and
# is slower with gunicorn's one-thread sync workers (docs/performance.md), so it stays
# opt-in for threaded workers.
DATABASE_CONN_MAX_AGE = env.int("CONN_MAX_AGE", default=600)
# CONN_HEALTH_CHECKS=0 drops the per-request ping: a connection the server dropped then
# fails one request (503) before Django replaces it. Measured in docs/performance.md.
DATABASE_CONN_HEALTH_CHECKS = env.bool("CONN_HEALTH_CHECKS", default=True)
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=0)


def _connection_reuse(database: dict) -> None:
    """Persistent connections with health checks, or a psycopg pool when asked for."""
    if DATABASE_POOL_SIZE > 0:
        database["CONN_MAX_AGE"] = 0  # Django refuses a pool with persistent connections
        database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DATABASE_POOL_SIZE,
            "timeout": 10,
        }
        return
    database.setdefault("CONN_MAX_AGE", DATABASE_CONN_MAX_AGE)
    database["CONN_HEALTH_CHECKS"] = DATABASE_CONN_HEALTH_CHECKS


DATABASES = {"default": _database_from_env()}
# `manage.py migrate` connects as this role (the tables' owner; same database) when set,
# while the service runs as DATABASE_URL's role, which owns nothing (deploy/db_roles.sql).
MIGRATE_DATABASE_URL = env.str("MIGRATE_DATABASE_URL", default="")

# --- Bounded database waits (contract: Failures, "Slow or hung database") ----------------
# A database that accepts connections but never answers must not hang a request. Each
# wait is bounded (divine_whispers/db/bounds.py, applied by the bounded_postgresql engine);
# past a bound the request answers 503 service_unavailable with the honest outcome.
DATABASE_CONNECT_TIMEOUT_SECONDS = env.int("DATABASE_CONNECT_TIMEOUT_SECONDS", default=2)
DATABASE_LOCK_TIMEOUT_SECONDS = env.float("DATABASE_LOCK_TIMEOUT_SECONDS", default=3.0)
DATABASE_STATEMENT_TIMEOUT_SECONDS = env.float("DATABASE_STATEMENT_TIMEOUT_SECONDS", default=5.0)
DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS = env.float(
    "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", default=5.0
)
# A request's database work ends this long after it arrived (the 503 is sent within it).
DATABASE_REQUEST_TIMEOUT_SECONDS = env.float("DATABASE_REQUEST_TIMEOUT_SECONDS", default=10.0)
# The ping of a reused connection (CONN_HEALTH_CHECKS) and /healthz's `SELECT 1`.
DATABASE_HEALTH_TIMEOUT_SECONDS = env.float("DATABASE_HEALTH_TIMEOUT_SECONDS", default=1.0)
# After a connection attempt timed out, this process fails new ones at once for this long
# (and starts none while one has been unanswered for 0.5 s); 0 turns that breaker off.
DATABASE_CONNECT_RETRY_SECONDS = env.float("DATABASE_CONNECT_RETRY_SECONDS", default=1.0)
# Longer bounds, by name (statement, lock wait and idle transaction alike): the job
# worker, verify_ledger, the admin's streamed CSV exports and the finance report.
DATABASE_WORKER_TIMEOUT_SECONDS = env.float("DATABASE_WORKER_TIMEOUT_SECONDS", default=30.0)
DATABASE_VERIFY_LEDGER_TIMEOUT_SECONDS = env.float(
    "DATABASE_VERIFY_LEDGER_TIMEOUT_SECONDS", default=1800.0
)
DATABASE_EXPORT_TIMEOUT_SECONDS = env.float("DATABASE_EXPORT_TIMEOUT_SECONDS", default=300.0)
DATABASE_REPORT_TIMEOUT_SECONDS = env.float("DATABASE_REPORT_TIMEOUT_SECONDS", default=30.0)
# Any other command (migrate, cleanup_pending…) and the tests: 0 = no bound of ours.
DATABASE_COMMAND_TIMEOUT_SECONDS = env.float("DATABASE_COMMAND_TIMEOUT_SECONDS", default=0.0)

# --- Cluster: transaction pooling and read replicas (docs/operations/cluster.md) ----------
# Behind PgBouncer in transaction mode consecutive transactions of one Django connection
# may run on different server connections, so nothing may outlive a transaction on the
# server: no named prepared statements (psycopg's prepare_threshold=None, and the spend
# fast path, which prepares its two statements explicitly, stops doing so), no cursor
# held past its transaction (divine_whispers/pooled_postgresql), no SET outside one.
DATABASE_TRANSACTION_POOLING = env.bool("DATABASE_TRANSACTION_POOLING", default=False)
# A streaming standby for read-only endpoints (history, job lists, admin lists).
# Unset: every query goes to the primary (DATABASE_URL).
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
# Reads fall back to the primary while the replica's replay lag exceeds this.
REPLICA_MAX_LAG_SECONDS = env.float("REPLICA_MAX_LAG_SECONDS", default=2.0)
# After a write, the user's reads go to the primary for this long (read your writes).
# Longer than the lag bound: once it ends, a replica within the bound has the write.
REPLICA_READ_YOUR_WRITES_SECONDS = env.float(
    "REPLICA_READ_YOUR_WRITES_SECONDS", default=REPLICA_MAX_LAG_SECONDS + 3.0
)
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    apply_transaction_pooling(apply_bounds(DATABASES["default"]), DATABASE_TRANSACTION_POOLING)
    if DATABASE_REPLICA_URL:
        DATABASES["replica"] = replica_database(
            env.db_url_config(DATABASE_REPLICA_URL),
            like=DATABASES["default"],
            pooling=DATABASE_TRANSACTION_POOLING,
        )
DATABASE_ROUTERS = ["divine_whispers.db.routing.ReplicaRouter"]

# --- Cache (hardening): an optimisation, never a single point of failure -------------
# Rate limits live here (Redis in production, local memory when CACHE_URL is unset). A
# cache that refuses connections or answers slower than CACHE_TIMEOUT_MS lets requests
# through (divine_whispers/cache_guard.py); the outage is logged at most once per
# CACHE_ERROR_LOG_INTERVAL_SECONDS, and each process stops asking the cache for
# CACHE_RETRY_SECONDS after an error.
CACHE_TIMEOUT_MS = env.int("CACHE_TIMEOUT_MS", default=100)
CACHE_ERROR_LOG_INTERVAL_SECONDS = env.float("CACHE_ERROR_LOG_INTERVAL_SECONDS", default=60.0)
CACHE_RETRY_SECONDS = env.float("CACHE_RETRY_SECONDS", default=5.0)
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://divine-whispers")}
CACHES["default"].setdefault("OPTIONS", {}).update(
    cache_options(env.str("CACHE_URL", default=""), CACHE_TIMEOUT_MS)
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Static files (the admin's CSS/JS, Swagger UI) are served by WhiteNoise straight from the
# installed apps' folders, in development and production alike: no `collectstatic` step,
# and nothing that can go stale after an upgrade of Django or the Swagger UI package. No
# STATIC_ROOT by default, so WhiteNoise has no missing folder to warn about in every
# worker; set STATIC_ROOT (and run collectstatic) only to hand the files to a CDN or proxy.
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Money limits (contract: "Limits and suspicious activity") -------------------
WALLET_MAX_TRANSACTION_AMOUNT = env.int("WALLET_MAX_TRANSACTION_AMOUNT", default=1_000_000)
WALLET_MAX_TRANSFER_AMOUNT = env.int("WALLET_MAX_TRANSFER_AMOUNT", default=100_000)
WALLET_LARGE_AMOUNT_THRESHOLD = env.int("WALLET_LARGE_AMOUNT_THRESHOLD", default=10_000)
WALLET_VELOCITY_LIMIT = env.int("WALLET_VELOCITY_LIMIT", default=30)
WALLET_VELOCITY_WINDOW_SECONDS = env.int("WALLET_VELOCITY_WINDOW_SECONDS", default=60)
# Serialization failures and deadlocks are retried this many times in total.
WALLET_TRANSACTION_ATTEMPTS = env.int("WALLET_TRANSACTION_ATTEMPTS", default=5)

# --- Four-eyes approvals and the admin back-office --------------------------------------
# An adjustment whose absolute amount is at least this needs a second staff member
# (wallet.approve_adjustment); 0 turns approvals off.
WALLET_APPROVAL_THRESHOLD = env.int("WALLET_APPROVAL_THRESHOLD", default=10_000)
# A request nobody decided within this many hours reads `expired` and can no longer be.
WALLET_APPROVAL_TTL_HOURS = env.int("WALLET_APPROVAL_TTL_HOURS", default=72)
# The threshold is cumulative: what one staff member booked alone (positive adjustments
# and grants), and what was booked alone into one wallet, within this many hours counts
# together with the next amount.
WALLET_APPROVAL_WINDOW_HOURS = env.int("WALLET_APPROVAL_WINDOW_HOURS", default=24)
# How long an admin confirmation page (refund, adjustment) stays valid once issued.
ADMIN_CONFIRMATION_MAX_AGE_SECONDS = env.int("ADMIN_CONFIRMATION_MAX_AGE_SECONDS", default=1800)
# A refund page warns when the spend was already refunded within this many minutes.
ADMIN_RECENT_REFUND_MINUTES = env.int("ADMIN_RECENT_REFUND_MINUTES", default=60)
# Admin dates as "2026-11-28 13:04:56 UTC" (seconds and time zone); see formats/en.
FORMAT_MODULE_PATH = ["divine_whispers.formats"]
# --- Finance report (contract: "Reports") ---------------------------------------------
# The days of the daily report (API and admin) are days of this IANA time zone. Checked
# here, so a misspelt zone stops the service at start instead of failing every report.
REPORT_TIMEZONE = env.str("REPORT_TIMEZONE", default="UTC")
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: E402  (kept in this block)

from django.core.exceptions import ImproperlyConfigured  # noqa: E402

try:
    ZoneInfo(REPORT_TIMEZONE)
except (ValueError, ZoneInfoNotFoundError) as _error:
    raise ImproperlyConfigured(
        f"REPORT_TIMEZONE={REPORT_TIMEZONE!r} is not a time zone"
    ) from _error
# Rows fetched per round trip by the admin's streamed CSV exports (constant memory).
EXPORT_CHUNK_SIZE = env.int("EXPORT_CHUNK_SIZE", default=2000)

# --- Audit chain ------------------------------------------------------------------
# The key never lives in the database: whoever only has database access cannot
# forge a consistent chain. AUDIT_HMAC_KEY_ID is stored on each event for rotation.
AUDIT_HMAC_KEY = env.str("AUDIT_HMAC_KEY", default=DEV_AUDIT_HMAC_KEY)
AUDIT_HMAC_KEY_ID = env.str("AUDIT_HMAC_KEY_ID", default="k1")
# Older keys still needed to verify events written before a rotation: "id=key,id=key".
AUDIT_HMAC_OLD_KEYS = env.dict("AUDIT_HMAC_OLD_KEYS", default={})

# --- Jobs ---------------------------------------------------------------------------
JOBS_RUNNING_TIMEOUT_SECONDS = env.int("JOBS_RUNNING_TIMEOUT_SECONDS", default=300)
JOBS_POLL_INTERVAL_SECONDS = env.float("JOBS_POLL_INTERVAL_SECONDS", default=1.0)
# How often a worker refreshes heartbeat_at of the job it runs (default: timeout / 5,
# between 0.05 s and 30 s), so a long handler is never mistaken for a dead worker.
JOBS_HEARTBEAT_SECONDS = env.float("JOBS_HEARTBEAT_SECONDS", default=0.0) or None
# A handler still running after this long stops heartbeating, so a hung (but alive)
# handler's job is reaped and refunded like a dead worker's; its late result is dropped.
JOBS_MAX_RUN_SECONDS = env.float("JOBS_MAX_RUN_SECONDS", default=3600.0)
# Extra modules that register job handlers (jobs.handlers.register), comma separated.
JOBS_HANDLER_MODULES = env.list("JOBS_HANDLER_MODULES", default=[])

# --- Purchases (payment provider: Stripe) ------------------------------------------------
# Off by default: a server without Stripe keys sells nothing (POST /api/v1/purchases → 503
# provider_unavailable). On, with DEBUG off, a missing key or webhook secret refuses to start
# (divine_whispers/production.py); an sk_test_ key starts with a warning and /healthz says
# "payments": "test_mode".
PAYMENTS_ENABLED = env.bool("PAYMENTS_ENABLED", default=False)
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# Comma separated: two secrets are accepted while one is being rotated.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# A local Stripe (localstripe) for development, tests and drills; Stripe's own by default.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)

# --- REST API -------------------------------------------------------------------------
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="600/minute")
# Requests without credentials (schema, docs), per client IP.
API_ANON_THROTTLE_RATE = env.str("API_ANON_THROTTLE_RATE", default="120/minute")

# The DRF and drf-spectacular settings live beside the API toolkit they configure.
REST_FRAMEWORK = rest_framework_settings()
SPECTACULAR_SETTINGS = spectacular_settings()

# --- Observability: logs and metrics (docs/operations/monitoring.md) ---------------
# LOG_FORMAT=json: one JSON object per line on stdout (the default when DEBUG is off);
# text: readable lines for development. Credentials are redacted from every line.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = logging_config(LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))
# /metrics answers a request carrying `Authorization: Bearer METRICS_TOKEN`, or one whose
# REMOTE_ADDR is in METRICS_ALLOWED_IPS (addresses or CIDR networks). Both empty by default:
# nobody can read the metrics until the operator says who may.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])

# --- API keys and login lockout (hardening-auth) ---------------------------------------
# API keys are django-rest-knox tokens: only a SHA-512 digest is stored, every key has an
# expiry (API_TOKEN_TTL, e.g. "90d"; `issue_token --expires-in` overrides it per key), and
# revoking deletes the row, so every server refuses the key on its next request.
API_TOKEN_TTL = parse_duration(env.str("API_TOKEN_TTL", default="90d"))
KNOX_TOKEN_MODEL = "wallet.ApiToken"
# Knox's own migrations create its default table even when the model is swapped for ours;
# without them Django creates no table for the swapped-out model.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {"TOKEN_TTL": API_TOKEN_TTL, "AUTH_HEADER_PREFIX": "Token", "AUTO_REFRESH": False}

# Login lockout (django-axes, database handler: every process sees the same failures):
# AUTH_LOCKOUT_FAILURES failures for one username from one address within
# AUTH_LOCKOUT_MINUTES lock that pair out for the rest of the window.
AUTH_LOCKOUT_FAILURES = env.int("AUTH_LOCKOUT_FAILURES", default=5)
AUTH_LOCKOUT_MINUTES = env.int("AUTH_LOCKOUT_MINUTES", default=15)
AXES_ENABLED = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = AUTH_LOCKOUT_FAILURES
AXES_COOLOFF_TIME = timedelta(minutes=AUTH_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts during a lockout neither extend it nor count again: refused until the window ends.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "divine_whispers.client_ip.axes_client_ip"
AXES_LOCKOUT_CALLABLE = "audit.lockout.lockout_response"
AXES_VERBOSE = False
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
# Right inside the request-id middleware: every error under /api/ becomes the JSON body.
MIDDLEWARE.insert(
    MIDDLEWARE.index("divine_whispers.request_context.RequestContextMiddleware") + 1,
    "divine_whispers.api.middleware.ApiJsonErrorsMiddleware",
)

# Input rules: X-Forwarded-For is believed only through this many trusted reverse proxies
# (0: never; the client address is the socket's). Used by throttles, audit and lockout.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# No OPTIONS metadata (DRF's describes serializers and failed with a 500 on views
# without one); an OPTIONS request is 405 like any other undocumented method.
REST_FRAMEWORK["DEFAULT_METADATA_CLASS"] = None
# CSRF failures answer the JSON error body under /api/ (Django's page elsewhere).
CSRF_FAILURE_VIEW = "divine_whispers.api.exceptions.csrf_failure"
# Axes logs every successful login at INFO; failures and lockouts (WARNING) are enough.
LOGGING.setdefault("loggers", {})["axes"] = {"level": "WARNING"}
# --- Secure headers and TLS (hardening) -------------------------------------------------
# Content-Security-Policy (django-csp) on every HTML page — the admin, Swagger UI at
# /api/docs/ (served by the split view: no inline script), the browsable API. Scripts,
# styles and images come from this site only; Django's admin sets a few inline `style`
# attributes, hence 'unsafe-inline' for styles alone.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"
# TLS deployments: HTTPS=1 turns on the SSL redirect, HSTS (one year, subdomains,
# preload) and secure cookies together; each can be overridden by its own variable.
# Behind a proxy that terminates TLS, SECURE_PROXY_SSL_HEADER=1 trusts its
# X-Forwarded-Proto (only safe when the proxy always sets it).
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
# Load balancers probe over plain HTTP: /healthz is never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=HTTPS)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
