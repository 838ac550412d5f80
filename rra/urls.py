from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from rra import health, metrics, pwa_views

# Each app keeps its own URLs; the project includes them by name and imports none of
# them. The API's are in one namespace, "api" (api:chats, api:documents, ...): chats
# first, the most of the traffic.
api_patterns = [
    path("health", health.ready, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("", include("chats.api_urls")),
    path("", include("documents.api_urls")),
    path("", include("accounts.api_urls")),
]

urlpatterns = [
    # First: the API is most of the traffic, and Django tries the patterns in order
    # (nothing below matches a path under api/).
    path("api/", include((api_patterns, "api"))),
    path("", include("chats.urls")),  # home, chat
    # The service worker and the offline page come before django-pwa's urls, which have
    # defaults for both; from those we use /manifest.json (templates/manifest.json).
    path("sw.js", pwa_views.service_worker, name="service-worker"),
    path("offline/", pwa_views.offline, name="offline"),
    path("", include("pwa.urls")),
    path("accounts/", include("accounts.urls")),
    path("documents/", include("documents.urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics.metrics_view, name="metrics"),
]

if settings.DEBUG:
    urlpatterns.append(path("dev/vlist/", pwa_views.vlist_demo, name="dev-vlist"))

handler400 = "rra.views.bad_request"
handler403 = "rra.views.permission_denied"
handler404 = "rra.views.not_found"
handler500 = "rra.views.server_error"
