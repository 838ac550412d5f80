"""The documents API, included under api/ in the project's "api" namespace (rra/urls.py)."""

from django.urls import path

from documents import api, viewer_api

urlpatterns = [
    path("documents", api.DocumentListView.as_view(), name="documents"),
    path("search", api.SearchView.as_view(), name="search"),
    path("documents/<int:document_id>", api.DocumentDetailView.as_view(), name="document-detail"),
    path(
        "documents/<int:document_id>/reprocess",
        api.DocumentReprocessView.as_view(),
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
