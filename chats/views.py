from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from chats.models import Chat, Citation, Message

SIDEBAR_SIZE = 50


def _sidebar(request: HttpRequest):
    if not request.user.is_authenticated:
        return []
    return list(
        Chat.objects.owned_by(request.user).only("id", "title", "created_at")[:SIDEBAR_SIZE]
    )


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The chat page with no chat open: ask a first question."""
    return render(
        request, "chats/chat.html", {"chat": None, "chats": _sidebar(request), "can_ask": True}
    )


def chat_page(request: HttpRequest, chat_id) -> HttpResponse:
    """A chat; public chats are readable (read-only) by anyone with the link."""
    chat = get_object_or_404(
        Chat.objects.readable_by(request.user).select_related("owner"), pk=chat_id
    )
    messages = chat.messages.prefetch_related(
        Prefetch("citations", queryset=Citation.objects.order_by("number"))
    ).order_by("created_at", "id")
    is_owner = request.user.is_authenticated and chat.owner_id == request.user.pk
    return render(
        request,
        "chats/chat.html",
        {
            "chat": chat,
            "chat_messages": messages,
            "chats": _sidebar(request),
            "is_owner": is_owner,
            "can_ask": is_owner,
            "Message": Message,
        },
    )
