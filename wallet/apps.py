"""The wallet app: per-request reset of the commit flag, the purchases' scrape-time gauges."""

from django.apps import AppConfig


class WalletConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "wallet"

    def ready(self) -> None:
        from django.core.signals import request_started

        # Imported in ready(): models and settings must be loaded first.
        from divine_whispers.db.transactions import reset_commit_sent

        request_started.connect(reset_commit_sent, dispatch_uid="wallet-reset-commit-sent")

        # Imported in ready(): models and settings must be loaded first.
        from divine_whispers.observability.metrics import register_scrape_gauges
        from wallet.selectors import payment_gauges

        register_scrape_gauges(payment_gauges)
