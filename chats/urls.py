"""The chat pages (no namespace: "home" and "chat", as the templates name them)."""

from django.urls import path

from chats import views

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<uuid:chat_id>/", views.chat_page, name="chat"),
]
