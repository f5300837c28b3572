from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        # Connects the `auth.lockout` audit receiver to django-axes' lockout signal.
        from audit import lockout  # noqa: F401
        from audit.metrics import ledger_verified_gauges

        # Imported in ready(): models and settings must be loaded first.
        from divine_whispers.observability.metrics import register_scrape_gauges

        register_scrape_gauges(ledger_verified_gauges)
