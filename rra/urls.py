from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from accounts import api as accounts_api
from chats import api as chats_api
from chats import views as chats_views
from documents import api as documents_api
from documents import viewer_api
from rra import health, metrics, pwa_views

api_patterns = [
    path("health", health.ready, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("me", accounts_api.me, name="me"),
    path("tokens", accounts_api.tokens, name="tokens"),
    path("tokens/<int:token_id>", accounts_api.token_detail, name="token-detail"),
    path("documents", documents_api.DocumentListView.as_view(), name="documents"),
    path("search", documents_api.SearchView.as_view(), name="search"),
    path("chats", chats_api.ChatListView.as_view(), name="chats"),
    path("chats/<uuid:chat_id>", chats_api.ChatDetailView.as_view(), name="chat-detail"),
    path("chats/<uuid:chat_id>/messages", chats_api.MessagesView.as_view(), name="chat-messages"),
    path("chats/<uuid:chat_id>/stop", chats_api.StopView.as_view(), name="chat-stop"),
    path(
        "answers/<str:answer_id>/events",
        chats_api.AnswerEventsView.as_view(),
        name="answer-events",
    ),
    path(
        "chats/<uuid:chat_id>/regenerate",
        chats_api.RegenerateView.as_view(),
        name="chat-regenerate",
    ),
    path("chats/<uuid:chat_id>/edit-last", chats_api.EditLastView.as_view(), name="chat-edit-last"),
    path("messages/<int:message_id>/vote", chats_api.VoteView.as_view(), name="message-vote"),
    path(
        "documents/<int:document_id>",
        documents_api.DocumentDetailView.as_view(),
        name="document-detail",
    ),
    path(
        "documents/<int:document_id>/reprocess",
        documents_api.DocumentReprocessView.as_view(),
        name="document-reprocess",
    ),
    path(
        "documents/<int:document_id>/pages/<int:page>",
        viewer_api.PageView.as_view(),
        name="document-page",
    ),
    path(
        "documents/<int:document_id>/pages/<int:page>/image",
        viewer_api.PageImageView.as_view(),
        name="document-page-image",
    ),
]

urlpatterns = [
    # First: the API is most of the traffic, and Django tries the patterns in order
    # (nothing below matches a path under api/).
    path("api/", include((api_patterns, "api"))),
    path("", chats_views.home, name="home"),
    path("c/<uuid:chat_id>/", chats_views.chat_page, name="chat"),
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
