"""The accounts API, included under api/ in the project's "api" namespace (rra/urls.py)."""

from django.urls import path

from accounts import api

urlpatterns = [
    path("me", api.me, name="me"),
    path("tokens", api.tokens, name="tokens"),
    path("tokens/<int:token_id>", api.token_detail, name="token-detail"),
]
