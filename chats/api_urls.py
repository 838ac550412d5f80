"""The chats API, included under api/ in the project's "api" namespace (rra/urls.py)."""

from django.urls import path

from chats import api

urlpatterns = [
    path("chats", api.ChatListView.as_view(), name="chats"),
    path("chats/<uuid:chat_id>", api.ChatDetailView.as_view(), name="chat-detail"),
    path("chats/<uuid:chat_id>/messages", api.MessagesView.as_view(), name="chat-messages"),
    path("chats/<uuid:chat_id>/stop", api.StopView.as_view(), name="chat-stop"),
    path("answers/<str:answer_id>/events", api.AnswerEventsView.as_view(), name="answer-events"),
    path("chats/<uuid:chat_id>/regenerate", api.RegenerateView.as_view(), name="chat-regenerate"),
    path("chats/<uuid:chat_id>/edit-last", api.EditLastView.as_view(), name="chat-edit-last"),
    path("messages/<int:message_id>/vote", api.VoteView.as_view(), name="message-vote"),
]
