from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        # Connects the `auth.lockout` audit receiver to django-axes' lockout signal.
        from divine_whispers import lockout  # noqa: F401
