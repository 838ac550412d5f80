"""The site's urls plus the DEBUG-only pages, for browser tests (settings.ROOT_URLCONF)."""

from django.urls import path

from rra import pwa_views
from rra.urls import handler400, handler403, handler404, handler500, urlpatterns

urlpatterns = [*urlpatterns, path("dev/vlist/", pwa_views.vlist_demo, name="dev-vlist")]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
