from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.backends import cached_user
from chats import answering
from chats.models import CHAT_PAGE_CACHE, SIDEBAR_CACHE, Chat, Citation, Message, Vote
from chats.selectors import hide_unreadable_sources, readable_chat
from rra.querycache import cached

SIDEBAR_SIZE = 50


def _sidebar(request: HttpRequest) -> list[Chat]:
    if not request.user.is_authenticated:
        return []
    return cached(
        SIDEBAR_CACHE,
        scopes=[Chat.list_cache_scope(request.user.pk)],
        viewer=request.user,
        params=[SIDEBAR_SIZE],
        compute=lambda: list(
            Chat.objects.owned_by(request.user).only("id", "title", "created_at")[:SIDEBAR_SIZE]
        ),
    ).value


def _chat_with_messages(request: HttpRequest, chat_id) -> tuple[Chat, list[Message]]:
    """A chat the requester may read, with its messages and their citations (404 else).
    The query cache checks access in the database first (readable_chat); the messages
    come from the cache."""
    user = request.user
    chats: list[Chat] = []

    def access() -> Chat:
        chats.append(readable_chat(user, chat_id))
        return chats[0]

    def compute(chat: Chat) -> list[Message]:
        messages = list(
            chat.messages.prefetch_related(
                Prefetch("citations", queryset=Citation.objects.order_by("number"))
            ).order_by("created_at", "id")
        )
        hide_unreadable_sources(messages, user)
        return messages

    messages = cached(
        CHAT_PAGE_CACHE,
        scopes=[Chat.cache_scope(chat_id)],
        viewer=user,
        access=access,
        compute=compute,
    ).value
    chat = chats[0]
    # The owner's name ("Shared by …") comes from the users cache, which their own
    # changes invalidate.
    if (owner := cached_user(chat.owner_id)) is not None:
        chat.owner = owner
    return chat, messages


def _model_configured() -> bool:
    """Whether answers are written by a model (chats.answering.llm.get_llm chooses xAI
    or an OpenAI-compatible server); without one they quote the manuals (extractive)."""
    return bool(settings.XAI_API_KEY or settings.LLM_BASE_URL)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The chat page with no chat open: ask a first question."""
    return render(
        request,
        "chats/chat.html",
        {
            "chat": None,
            "chats": _sidebar(request),
            "can_ask": True,
            "model_configured": _model_configured(),
        },
    )


def chat_page(request: HttpRequest, chat_id) -> HttpResponse:
    """A chat; public chats are readable (read-only) by anyone with the link."""
    chat, messages = _chat_with_messages(request, chat_id)
    is_owner = request.user.is_authenticated and chat.owner_id == request.user.pk
    # An answer still being written: the page picks it up where it is.
    running = answering.running_answer(chat) if is_owner else None
    # The reader's own votes (not cached with the messages, which every reader shares):
    # a reload shows which answers they marked.
    my_votes = (
        dict(
            Vote.objects.filter(user=request.user, message__chat=chat).values_list(
                "message_id", "value"
            )
        )
        if request.user.is_authenticated
        else {}
    )
    return render(
        request,
        "chats/chat.html",
        {
            "chat": chat,
            "chat_messages": messages,
            "chats": _sidebar(request),
            "is_owner": is_owner,
            "can_ask": is_owner,
            "running_answer": running,
            "my_votes": my_votes,
            "model_configured": _model_configured(),
            "Message": Message,
        },
    )
