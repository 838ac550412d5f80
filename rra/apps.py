from django.apps import AppConfig


class RraConfig(AppConfig):
    """The project package as an app: platform management commands live here."""

    name = "rra"
    verbose_name = "RRA platform"

    def ready(self) -> None:
        from rra import slow_queries

        # Every database connection, in any process, times its queries.
        slow_queries.connect()
