from django.apps import AppConfig, apps
from django.db.models.signals import post_delete, post_save


class RraConfig(AppConfig):
    """The project package as an app: platform management commands live here."""

    name = "rra"
    verbose_name = "RRA platform"

    def ready(self) -> None:
        from rra import slow_queries
        from rra.querycache import CacheScoped, on_instance_change

        # Saves and deletes (cascades and admin included) of the models that feed the
        # query cache invalidate it; bulk writes go through InvalidatingQuerySet.
        for model in apps.get_models():
            if issubclass(model, CacheScoped):
                post_save.connect(on_instance_change, sender=model, dispatch_uid=f"qc-{model}")
                post_delete.connect(on_instance_change, sender=model, dispatch_uid=f"qc-{model}")

        # Every database connection, in any process, times its queries.
        slow_queries.connect()
