from django.urls import path

from documents import views

app_name = "documents"

urlpatterns = [
    path("", views.library, name="library"),
    path("upload/", views.upload, name="upload"),
    path("<int:document_id>/delete/", views.delete, name="delete"),
    path("<int:document_id>/reprocess/", views.reprocess, name="reprocess"),
]
