import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import Signal, receiver

from documents.models import Document
from documents.pages import clear_page_cache
from documents.search import invalidate_for

logger = logging.getLogger(__name__)

# What a document shows its readers changed: who may read it (visibility, owner), its
# passages (replaced when it is processed again: chunks_only=True, the citations of the
# old chunks lose their link), or it goes (its citations lose their link). Sent with
# document_id and chunks_only; apps that show copies of its passages (chats' citations)
# drop their cached views. Sent inside the writer's transaction: receivers bump now and
# on commit (rra.querycache.bump).
readability_changed = Signal()


@receiver([post_save, post_delete], sender=Document)
def document_changed(sender, instance: Document, **kwargs) -> None:
    """Saves and deletes can change what is readable: drop cached searches on commit.
    (Bulk .update() calls in documents.services invalidate explicitly.)"""
    owner_id = instance.owner_id
    # Now (the writer's next search sees the change) and on commit (another process may
    # have cached the old rows in between), as in rra/querycache.py.
    invalidate_for(owner_id=owner_id)
    transaction.on_commit(lambda: invalidate_for(owner_id=owner_id))


@receiver(post_save, sender=Document)
def document_saved(sender, instance: Document, created: bool, **kwargs) -> None:
    """Who may read a document's passages can change with a save (visibility, owner):
    readability_changed (chats citing it show or hide its passages per reader)."""
    if created or kwargs.get("raw"):
        return
    fields = kwargs.get("update_fields")
    if fields is not None and not {"visibility", "owner", "owner_id"} & set(fields):
        return  # a rename or a status: who may read it is the same
    readability_changed.send(sender=Document, document_id=instance.pk, chunks_only=False)


@receiver(post_delete, sender=Document)
def document_deleted(sender, instance: Document, **kwargs) -> None:
    """The stored file and rendered page images go with the document, once the delete
    commits (never on a rollback). A signal, not document_delete(), so that every way a
    row goes (its owner deleted in admin or the ORM, a queryset delete) takes the files."""
    document_id = instance.pk
    file_name = instance.file.name
    storage = instance.file.storage
    if file_name:
        transaction.on_commit(lambda: _delete_stored_file(storage, file_name))
    transaction.on_commit(lambda: clear_page_cache(document_id))


def _delete_stored_file(storage, name: str) -> None:
    try:
        storage.delete(name)
    except OSError:  # the row is gone already: log it and let the other callbacks run
        logger.exception("could not delete the stored file %s", name)


@receiver(pre_delete, sender=Document)
def document_deleting(sender, instance: Document, **kwargs) -> None:
    """Chats citing the document show the citation unlinked from now on."""
    readability_changed.send(sender=Document, document_id=instance.pk, chunks_only=False)
