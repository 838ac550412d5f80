from django.apps import AppConfig, apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_delete, post_save


def _start_private_redis() -> None:
    """Start (or find) the private Redis when REDIS_URL is unset (rra/embedded_redis.py):
    at django.setup(), before anything connects, not when the settings are read."""
    if not getattr(settings, "EMBEDDED_REDIS_STARTS", False):
        return
    from rra import embedded_redis

    try:
        embedded_redis.ensure_running(settings.EMBEDDED_REDIS_DIR)
    except RuntimeError as exc:
        raise ImproperlyConfigured(f"Environment variable REDIS_URL is unset and {exc}.") from exc


class RraConfig(AppConfig):
    """The project package as an app: platform management commands live here."""

    name = "rra"
    verbose_name = "RRA platform"

    def ready(self) -> None:
        from rra import checks, slow_queries  # noqa: F401 - checks registers deploy checks

        _start_private_redis()
        from rra.querycache import CacheScoped, on_instance_change

        # Saves and deletes (cascades and admin included) of the models that feed the
        # query cache invalidate it; bulk writes go through InvalidatingQuerySet.
        for model in apps.get_models():
            if issubclass(model, CacheScoped):
                post_save.connect(on_instance_change, sender=model, dispatch_uid=f"qc-{model}")
                post_delete.connect(on_instance_change, sender=model, dispatch_uid=f"qc-{model}")

        # Every database connection, in any process, times its queries.
        slow_queries.connect()
        # ... and counts them into the request it runs for (the access line, metrics).
        from django.db.backends.signals import connection_created

        from rra.middleware import install_query_counter

        connection_created.connect(install_query_counter, dispatch_uid="rra.request_queries")
