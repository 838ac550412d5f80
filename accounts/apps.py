from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
    default = True

    def ready(self) -> None:
        from accounts import limits  # noqa: F401 - connects the failed-sign-in counter
        from accounts.services import pending_signups_prune
        from rra import registry

        registry.PRUNERS["pending_signups"] = pending_signups_prune


class RRAAdminConfig(admin_apps.AdminConfig):
    """Django admin on RRA's admin site (its sign-in is limited like the site's)."""

    default = False  # accounts.apps is the accounts app's; this one is named explicitly
    default_site = "accounts.admin_site.AdminSite"
