"""chats' receivers: its cached views of documents, and the questions telemetry counts."""

from __future__ import annotations

import logging

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from chats.models import Chat, Citation, Message
from documents.models import Document
from documents.signals import readability_changed
from rra import telemetry
from rra.querycache import bump

logger = logging.getLogger(__name__)


@receiver(readability_changed)
def citing_chats_changed(sender, document_id: int, chunks_only: bool = False, **kwargs) -> None:
    """Citations keep their text but lose the link (SET_NULL) when a document's chunks or
    the document go, and show or hide the passage per reader when who may read it
    changes: the cached chats that show them are read again."""
    citing = (
        Citation.objects.filter(chunk__document_id=document_id)
        if chunks_only
        else Citation.objects.filter(document_id=document_id)
    )
    chat_ids = citing.order_by().values_list("message__chat_id", flat=True).distinct()
    bump(*(Chat.cache_scope(chat_id) for chat_id in chat_ids))


@receiver(pre_delete, sender=Document)
def citations_lose_text(sender, instance: Document, **kwargs) -> None:
    """A deleted document's text goes from every citation that copied it (an answer
    keeps its number and says the source was removed), in the delete's transaction, by
    every way a document is deleted."""
    Citation.objects.filter(document_id=instance.pk).update(
        quote="", section="", source_removed=True
    )


@receiver(post_save, sender=Message)
def question_saved(sender, instance: Message, created: bool, raw: bool = False, **kwargs) -> None:
    """Every path that saves a question counts (rra_user_actions_total, conversions)."""
    if not created or raw or instance.role != Message.Role.USER:
        return
    try:
        owner_id = instance.chat.owner_id
        others = Message.objects.filter(chat__owner_id=owner_id, role=Message.Role.USER)
        first = not others.exclude(pk=instance.pk).exists()
        telemetry.question_asked(owner_id=owner_id, first=first)
    except Exception as exc:  # metrics must never break asking
        logger.warning("telemetry: a question could not be counted: %s", type(exc).__name__)
