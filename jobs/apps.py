from django.apps import AppConfig


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"

    def ready(self) -> None:
        # Imported in ready(): models and settings must be loaded first.
        from divine_whispers.observability.metrics import register_scrape_gauges
        from jobs.metrics import job_queue_gauges

        register_scrape_gauges(job_queue_gauges)
