from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from documents.models import location_label, pages_label
from rra.querycache import CacheScoped, InvalidatingQuerySet, Namespace


class ChatQuerySet(InvalidatingQuerySet):
    def owned_by(self, user) -> ChatQuerySet:
        return self.filter(owner=user) if user.is_authenticated else self.none()

    def readable_by(self, user) -> ChatQuerySet:
        """The owner's chats, and public chats for anyone who has the link."""
        if not user.is_authenticated:
            return self.filter(visibility=Chat.Visibility.PUBLIC)
        return self.filter(Q(owner=user) | Q(visibility=Chat.Visibility.PUBLIC))


class Chat(CacheScoped, models.Model):
    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private"
        PUBLIC = "public", "Anyone with the link"

    # A random id: a public chat's link cannot be guessed from another's.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chats", db_index=False
    )
    title = models.CharField(max_length=200, default="New chat")
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChatQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner"], name="chat_owner_idx"),
            models.Index(fields=["created_at"], name="chat_created_at_idx"),
            models.Index(fields=["visibility"], name="chat_visibility_idx"),
            models.Index(fields=["owner", "visibility"], name="chat_owner_visibility_idx"),
            # The chat list: a user's chats, newest first.
            models.Index(fields=["owner", "-created_at"], name="chat_owner_created_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    # The query cache: a user's chat list, and this chat with its messages.
    cache_scope_fields = ("id", "owner_id")

    @staticmethod
    def cache_scope(chat_id) -> str:
        """The scope of one chat with its messages, citations and votes."""
        return f"chat:{chat_id}"

    @staticmethod
    def list_cache_scope(owner_id) -> str:
        """The scope of one user's list of chats."""
        return f"chats:user:{owner_id}"

    @classmethod
    def cache_scopes_from(cls, values: dict) -> list[str]:
        return [cls.list_cache_scope(values["owner_id"]), cls.cache_scope(values["id"])]


class Message(CacheScoped, models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete", "Complete"
        PARTIAL = "partial", "Partial (stopped or interrupted)"
        ERROR = "error", "Error"

    chat = models.ForeignKey(
        Chat, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, help_text="Markdown.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = InvalidatingQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["chat"], name="message_chat_idx"),
            models.Index(fields=["role"], name="message_role_idx"),
            models.Index(fields=["created_at"], name="message_created_at_idx"),
            models.Index(fields=["chat", "created_at"], name="message_chat_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    cache_scope_fields = ("chat_id",)
    cache_cascade_covered = True  # deleted with its chat

    @classmethod
    def cache_scopes_from(cls, values: dict) -> list[str]:
        return [Chat.cache_scope(values["chat_id"])]


def _chat_scope_of_message(message_id: int, message: Message | None) -> list[str]:
    chat_id = (
        message.chat_id
        if message is not None
        else Message.objects.filter(pk=message_id).values_list("chat_id", flat=True).first()
    )
    return [Chat.cache_scope(chat_id)] if chat_id else []


class Citation(CacheScoped, models.Model):
    """A passage the answer cites. What the reader needs is copied here, so a citation
    survives its chunk being replaced when the document is processed again."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="citations")
    chunk = models.ForeignKey(
        "documents.Chunk", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    document = models.ForeignKey(
        "documents.Document", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    document_name = models.CharField(max_length=255)
    first_page = models.PositiveIntegerField()
    last_page = models.PositiveIntegerField()
    section = models.TextField(blank=True)
    paged = models.BooleanField(
        default=True,
        help_text="Whether the document has pages (PDF); else the section names the place.",
    )
    quote = models.TextField(help_text="The passage text as it was given to the model.")
    source_removed = models.BooleanField(
        default=False,
        help_text="The cited passage was gone when the answer was saved, or its document "
        "was deleted later (then its text is removed from quote too).",
    )
    start_offset = models.PositiveIntegerField(default=0)
    end_offset = models.PositiveIntegerField(default=0)
    number = models.PositiveSmallIntegerField(help_text="As cited in the answer: [n].")
    rank = models.PositiveSmallIntegerField(help_text="Position in the retrieval results.")
    score = models.FloatField()

    objects = InvalidatingQuerySet.as_manager()

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "number"], name="citation_message_number_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"[{self.number}] {self.document_name}"

    @property
    def pages(self) -> str:
        """The page label ("p. 3"), or "" for a document without pages."""
        return pages_label(self.first_page, self.last_page) if self.paged else ""

    @property
    def location(self) -> str:
        """What the sources list shows after the document's name: "p. 3" or "§ Setup"."""
        return location_label(self.first_page, self.last_page, self.section, paged=self.paged)

    cache_scope_fields = ("message__chat_id",)
    cache_cascade_covered = True  # deleted with its message

    @classmethod
    def cache_scopes_from(cls, values: dict) -> list[str]:
        return [Chat.cache_scope(values["message__chat_id"])]

    def cache_scopes(self) -> list[str]:
        cached = Citation.message.is_cached(self)
        return _chat_scope_of_message(self.message_id, self.message if cached else None)


class Vote(CacheScoped, models.Model):
    class Value(models.IntegerChoices):
        UP = 1, "Helpful"
        DOWN = -1, "Not helpful"

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="votes", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes"
    )
    value = models.SmallIntegerField(choices=Value.choices)
    created_at = models.DateTimeField(default=timezone.now)

    objects = InvalidatingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="vote_message_user_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.get_value_display()} {self.message_id}"

    # Vote counts show in the chat. Not cascade_covered: a user's deletion takes their
    # votes on other people's chats.
    cache_scope_fields = ("message__chat_id",)

    @classmethod
    def cache_scopes_from(cls, values: dict) -> list[str]:
        return [Chat.cache_scope(values["message__chat_id"])]

    def cache_scopes(self) -> list[str]:
        cached = Vote.message.is_cached(self)
        return _chat_scope_of_message(self.message_id, self.message if cached else None)


# --- The query cache's namespaces of chats (rra/querycache.py) -------------------------
# A chat list is its owner's own (scope chats:user:<id>); a chat's body is checked by
# each call (readable_chat), since public chats are read by anyone with the link.


def _ttl(name: str):
    return lambda: settings.QUERY_CACHE_TTLS[name]


# The API's bodies: (JSON bytes, ETag, brotli form or None).
CHAT_LIST_CACHE = Namespace("chats", version=2, value=tuple, ttl=_ttl("chats"), access="own:chats")
CHAT_DETAIL_CACHE = Namespace("messages", version=2, value=tuple, ttl=_ttl("messages"))
# The pages' model lists: the sidebar's chats, a chat page's messages with citations.
SIDEBAR_CACHE = Namespace("sidebar", version=1, value=list, ttl=_ttl("chats"), access="own:chats")
CHAT_PAGE_CACHE = Namespace("chat-page", version=1, value=list, ttl=_ttl("messages"))
