from django.apps import AppConfig


class RraConfig(AppConfig):
    """The project package as an app: platform management commands live here."""

    name = "rra"
    verbose_name = "RRA platform"
