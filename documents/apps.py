from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "documents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from documents import signals  # noqa: F401 - connects the receivers
        from documents.monitoring import embeddings_warm_up, ingest_queue_gauges
        from documents.services import documents_requeue_stale
        from rra import registry

        registry.GAUGES.append(ingest_queue_gauges)
        registry.WORKER_SWEEPS["stale documents"] = documents_requeue_stale
        registry.WORKER_WARM_UPS.append(embeddings_warm_up)
