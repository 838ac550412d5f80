"""Document workflows (writes): upload, ingestion pipeline, reprocess, delete, recovery."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from pathlib import PurePath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from documents import filetypes, stored_files
from documents.models import Chunk, Document, DocumentContent, DocumentTerm, Embedding
from documents.search import invalidate_for
from documents.signals import readability_changed
from rra import telemetry

logger = logging.getLogger(__name__)

NAME_MAX = 255


# --- Upload ----------------------------------------------------------------------


def display_name(raw: str) -> str:
    """A safe display name from the user's file name: no path, no control characters,
    at most 255 characters with the extension kept. Never used as a path."""
    name = PurePath(raw.replace("\\", "/")).name
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable()).strip()
    name = name.lstrip(".") or "untitled"
    if len(name) > NAME_MAX:
        suffix = PurePath(name).suffix[:16]
        name = name[: NAME_MAX - len(suffix) - 1] + "…" + suffix
    return name


@dataclass
class UploadResult:
    document: Document
    created: bool


def _sha256(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


class FileTooLarge(filetypes.FileRejected):
    pass


def document_validate_upload(*, upload: UploadedFile) -> str:
    """Check size and content type; return the MIME type or raise FileRejected."""
    limit = settings.MAX_UPLOAD_SIZE_MB * 1024 * 1024
    if upload.size > limit:
        raise FileTooLarge(
            f"“{display_name(upload.name or '')}” is {upload.size / 1048576:.1f} MB; "
            f"the limit is {settings.MAX_UPLOAD_SIZE_MB} MB."
        )
    return filetypes.detect(upload, name=upload.name or "", max_zip_entries=settings.DOCX_MAX_FILES)


def document_create(
    *,
    owner,
    upload: UploadedFile,
    mime_type: str,
    visibility: str = Document.Visibility.PRIVATE,
    enqueue: bool = True,
) -> UploadResult:
    """Store the file under a UUID name and queue it for the worker (enqueue=False: the
    caller runs document_ingest itself); the same file twice for the same owner returns
    the existing document. Raises stored_files.StoreUnavailable (nothing created) when
    the object store does not take the file."""
    sha = _sha256(upload)
    existing = Document.objects.filter(owner=owner, sha256=sha).first()
    if existing:
        return UploadResult(existing, created=False)
    document = Document(
        owner=owner,
        name=display_name(upload.name or ""),
        mime_type=mime_type,
        size=upload.size,
        sha256=sha,
        visibility=visibility,
    )
    try:
        document.file.save("upload", upload, save=False)
    except Exception as exc:  # the object store (S3) refused or did not answer
        if isinstance(exc, OSError):
            raise
        logger.warning("upload not stored: %s: %s", type(exc).__name__, exc)
        raise stored_files.StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
    try:
        with transaction.atomic():
            document.save()
            if enqueue:
                _enqueue_on_commit(document.pk)
    except IntegrityError:
        # The same file arrived twice at once: keep the first, drop our copy.
        document.file.delete(save=False)
        return UploadResult(Document.objects.get(owner=owner, sha256=sha), created=False)
    except BaseException:
        document.file.delete(save=False)  # no row points at it: never leave an orphan
        raise
    telemetry.document_uploaded(
        owner_id=owner.pk,
        shared_with_all=document.visibility == Document.Visibility.SHARED,
        first=not Document.objects.filter(owner=owner).exclude(pk=document.pk).exists(),
    )
    return UploadResult(document, created=True)


def duplicate_note(document: Document, *, asked: str) -> str:
    """What an upload of a file already in the library tells its owner: the document
    kept its visibility, whichever the upload asked for."""
    note = f"“{document.name}” is already in your library"
    if asked == document.visibility:
        return note + "."
    shown = Document.Visibility(document.visibility).label.lower()
    return f"{note}, {shown}; its visibility was not changed (change it from the document's menu)."


def _enqueue_on_commit(document_id: int, *, delay_s: float = 0) -> None:
    from documents.tasks import ingest_document

    def enqueue() -> None:
        task = ingest_document
        if delay_s:
            task = task.using(run_after=timezone.now() + timedelta(seconds=delay_s))
        task.enqueue(document_id=document_id)

    transaction.on_commit(enqueue)


def document_reprocess(*, document: Document) -> Document:
    """Queue a document again (from any state); its chunks are replaced when it is done."""
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).update(
            status=Document.Status.QUEUED,
            claim=None,
            attempts=0,
            failure_reason="",
            pages_done=0,
            chunks_embedded=0,
            updated_at=timezone.now(),
        )
        _enqueue_on_commit(document.pk)
        owner_id = document.owner_id
        transaction.on_commit(lambda: _invalidate_search(owner_id))
    document.refresh_from_db()
    return document


def document_delete(*, document: Document) -> None:
    """Delete the document, its content, chunks and embeddings; its file and page images
    go when this commits (documents.signals.document_deleted)."""
    with transaction.atomic():
        document.delete()


def _invalidate_search(owner_id: int) -> None:
    invalidate_for(owner_id=owner_id)


# --- Ingestion pipeline ----------------------------------------------------------


FILE_MISSING = "The uploaded file is no longer stored; upload it again."


class Superseded(Exception):
    """Our claim on the document is gone (deleted, reprocessed or re-queued)."""


class _Run:
    def __init__(self, document_id: int, claim: uuid.UUID) -> None:
        self.document_id = document_id
        self.claim = claim

    def update(self, **fields) -> None:
        fields["heartbeat_at"] = timezone.now()
        fields["updated_at"] = fields["heartbeat_at"]
        if not Document.objects.filter(pk=self.document_id, claim=self.claim).update(**fields):
            raise Superseded


def extraction_limits():
    """The extraction limits of the settings (documents.extraction.Limits)."""
    from documents.extraction import Limits

    return Limits(
        timeout_s=settings.EXTRACTION_TIMEOUT_S,
        memory_mb=settings.EXTRACTION_MEMORY_MB,
        max_pages=settings.EXTRACTION_MAX_PAGES,
        max_unpacked_mb=settings.DOCX_MAX_UNPACKED_MB,
        max_zip_entries=settings.DOCX_MAX_FILES,
        max_chars=settings.EXTRACTION_MAX_CHARS,
    )


@telemetry.track_ingest
def document_ingest(*, document_id: int) -> str:
    """Extract, chunk, embed and store one document. Idempotent: a re-run replaces the
    document's chunks and embeddings in one transaction. Returns what happened."""
    from documents.chunking import index_text
    from documents.embeddings import EmbeddingError, TransientEmbeddingError, get_provider
    from documents.extraction import ExtractionFailed, extract_file

    claim = uuid.uuid4()
    now = timezone.now()
    claimed = Document.objects.filter(pk=document_id, status=Document.Status.QUEUED).update(
        status=Document.Status.EXTRACTING,
        claim=claim,
        heartbeat_at=now,
        processing_started_at=now,
        updated_at=now,
        attempts=F("attempts") + 1,
        pages_done=0,
        pages_total=0,
        chunks_embedded=0,
        chunks_total=0,
        failure_reason="",
    )
    if not claimed:
        return "skipped"
    document = Document.objects.get(pk=document_id)
    run = _Run(document_id, claim)
    log = logger.getChild("ingest")
    if not document.file:
        log.error("document=%s has no stored file", document_id)
        return _fail(run, FILE_MISSING)
    try:
        with contextlib.ExitStack() as files:
            try:  # the stored file itself on a local disk, a temporary download from S3
                path = files.enter_context(stored_files.local_copy(document))
            except FileNotFoundError:
                log.error("document=%s has no stored file %r", document_id, document.file.name)
                return _fail(run, FILE_MISSING)
            extraction = extract_file(
                path,
                document.mime_type,
                limits=extraction_limits(),
                on_progress=lambda done, total: run.update(pages_done=done, pages_total=total),
            )
        telemetry.ingest_step("extract", pages=extraction.page_count, chars=extraction.char_count)
        run.update(
            status=Document.Status.CHUNKING,
            pages_done=extraction.page_count,
            pages_total=extraction.page_count,
        )
        provider = get_provider()
        title, drafts = document_passages(
            name=document.name, extraction=extraction, provider=provider
        )
        telemetry.ingest_step("chunk", chunks=len(drafts))
        if not drafts:
            raise ExtractionFailed("No text found (scanned document?).")
        run.update(status=Document.Status.EMBEDDING, chunks_total=len(drafts))
        vectors: list[list[float]] = []
        for batch in _batched(drafts, provider.batch_size):
            vectors.extend(provider.embed_documents([index_text(title, d.content) for d in batch]))
            run.update(chunks_embedded=len(vectors))
        telemetry.ingest_step("embed", chunks=len(vectors), model=provider.model_id)
        _store(document, run, extraction, drafts, vectors, provider, title)
        telemetry.ingest_step("store", pages=extraction.page_count, chunks=len(drafts))
        return "ready"
    except Superseded:
        log.info("document=%s was changed or deleted while processing; stopped", document_id)
        return "superseded"
    except stored_files.StoreUnavailable as exc:
        log.warning("document=%s: the file store failed: %s", document_id, exc)
        return _retry_or_fail(run, document_id, "The file store is unavailable.")
    except ExtractionFailed as exc:
        return _fail(run, exc.reason)
    except TransientEmbeddingError as exc:
        return _retry_or_fail(run, document_id, f"The embedding service is unavailable: {exc}")
    except EmbeddingError as exc:
        return _fail(run, f"The embedding service refused the document: {exc}")
    except Exception as exc:
        log.exception("document=%s failed unexpectedly", document_id)
        return _fail(run, f"Processing failed unexpectedly ({type(exc).__name__}).")


def document_passages(*, name: str, extraction, provider) -> tuple[str, list]:
    """The document's title and its chunks (ChunkDrafts) as ingestion makes them for
    provider's model; what is embedded is index_text(title, draft.content) of each
    (bench/ingest.py embeds the same texts to time the model alone)."""
    from documents.chunking import chunk_extraction, document_title

    title = document_title(name, extraction.metadata, heading=_first_heading(extraction))
    drafts = chunk_extraction(
        extraction,
        # Never past what the model reads with the title before it (index_text): the
        # rest would be silently cut off.
        target_tokens=min(
            settings.CHUNK_TARGET_TOKENS,
            max(provider.max_input_tokens - provider.count_tokens(title) - 1, 32),
        ),
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        count_tokens=provider.count_tokens,
    )
    return title, drafts


def _first_heading(extraction) -> str:
    """The text of the extraction's first heading block (see document_title)."""
    return next((b.text for b in extraction.blocks if b.kind == "heading"), "")


def _batched(items: list, size: int):
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


BLOCK_KINDS = {"heading": "h", "paragraph": "p", "list": "l", "table": "t"}


def stored_blocks(extraction) -> list[list]:
    """[start, end, kind, level] of the blocks of a DOCX or plain-text document (one
    page), what the viewer needs to show its structure (DocumentContent.blocks)."""
    if extraction.mime not in (filetypes.DOCX, filetypes.TEXT) or extraction.page_count != 1:
        return []
    return [[b.start, b.end, BLOCK_KINDS[b.kind], b.level] for b in extraction.blocks]


def _store(document, run: _Run, extraction, drafts, vectors, provider, title: str) -> None:
    from documents.vector_index import ensure_index

    ensure_index(provider.model_id, provider.dimensions)
    with transaction.atomic():
        # Lock the row: a concurrent reprocess or delete waits, or has already won.
        if (
            not Document.objects.select_for_update()
            .filter(pk=document.pk, claim=run.claim)
            .exists()
        ):
            raise Superseded
        # Its passages are replaced: whoever shows them (chats' citations) reads again.
        readability_changed.send(sender=Document, document_id=document.pk, chunks_only=True)
        Chunk.objects.filter(document=document).delete()
        DocumentContent.objects.update_or_create(
            document=document,
            defaults={
                "pages": [p.text for p in extraction.pages],
                "page_sizes": [[p.width, p.height] for p in extraction.pages],
                "page_count": extraction.page_count,
                "char_count": extraction.char_count,
                "metadata": extraction.metadata,
                "blocks": stored_blocks(extraction),
            },
        )
        chunks = Chunk.objects.bulk_create(
            [
                Chunk(
                    document=document,
                    index=d.index,
                    first_page=d.first_page,
                    last_page=d.last_page,
                    section=d.section,
                    title=title,
                    content=d.content,
                    token_count=d.token_count,
                    start_offset=d.start,
                    end_offset=d.end,
                )
                for d in drafts
            ],
            batch_size=500,
        )
        DocumentTerm.rebuild_for(document.pk)
        Embedding.objects.bulk_create(
            [
                Embedding(chunk=chunk, model=provider.model_id, vector=vector)
                for chunk, vector in zip(chunks, vectors, strict=True)
            ],
            batch_size=500,
        )
        owner_id = document.owner_id
        transaction.on_commit(lambda: _invalidate_search(owner_id))
        run.update(
            status=Document.Status.READY,
            claim=None,
            ready_at=timezone.now(),
            embedding_model=provider.model_id,
            chunks_embedded=len(drafts),
            failure_reason="",
        )


def _fail(run: _Run, reason: str) -> str:
    telemetry.ingest_failed(reason[:2000])
    try:
        run.update(status=Document.Status.FAILED, claim=None, failure_reason=reason[:2000])
    except Superseded:
        return "superseded"
    return "failed"


def _retry_or_fail(run: _Run, document_id: int, reason: str) -> str:
    attempts = Document.objects.values_list("attempts", flat=True).get(pk=document_id)
    if attempts >= settings.INGEST_MAX_ATTEMPTS:
        return _fail(run, f"{reason} (gave up after {attempts} attempts).")
    delay = settings.INGEST_RETRY_BASE_S * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)  # noqa: S311
    with transaction.atomic():
        try:
            run.update(
                status=Document.Status.QUEUED,
                claim=None,
                failure_reason=f"{reason} Retrying in {delay:.0f} s.",
            )
        except Superseded:
            return "superseded"
        _enqueue_on_commit(document_id, delay_s=delay)
    return "retrying"


# --- Recovery --------------------------------------------------------------------


def documents_requeue_stale(*, now=None) -> dict[str, int]:
    """Re-queue documents whose worker stopped reporting (it died mid-way); a document
    that has used up its attempts fails with a reason instead of looping."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.INGEST_STALE_AFTER_S)
    counts = {"requeued": 0, "failed": 0}
    stale = (
        Document.objects.in_progress()
        .filter(heartbeat_at__lt=cutoff)
        .only("pk", "claim", "attempts")
    )
    for document in stale:
        current = Document.objects.filter(pk=document.pk, claim=document.claim)
        if document.attempts >= settings.INGEST_MAX_ATTEMPTS:
            if current.update(
                status=Document.Status.FAILED,
                claim=None,
                updated_at=now,
                failure_reason=(
                    f"Processing stopped {document.attempts} times without finishing; "
                    "the document may crash the worker."
                ),
            ):
                counts["failed"] += 1
            continue
        with transaction.atomic():
            if current.update(status=Document.Status.QUEUED, claim=None, updated_at=now):
                _enqueue_on_commit(document.pk)
                counts["requeued"] += 1
    return counts


def document_reindex(*, document: Document, provider) -> int:
    """Embed a ready document's chunks with another model (or again with the same one),
    beside the existing vectors; searches switch to the new model only once all its
    chunks have one. Chunks stored before they carried the document's title get it here
    (text leg: the search vector and term counts; vector leg: the new embeddings)."""
    from documents.chunking import document_title, index_text
    from documents.vector_index import ensure_index

    metadata = (
        DocumentContent.objects.filter(document=document).values_list("metadata", flat=True).first()
    )
    chunks = list(document.chunks.order_by("index").only("pk", "content", "section"))
    title = document_title(document.name, metadata, heading=chunks[0].section if chunks else "")
    vectors: list[list[float]] = []
    for batch in _batched(chunks, provider.batch_size):
        vectors.extend(provider.embed_documents([index_text(title, c.content) for c in batch]))
    ensure_index(provider.model_id, provider.dimensions)
    with transaction.atomic():
        current = Document.objects.select_for_update().get(pk=document.pk)
        chunk_ids = set(current.chunks.values_list("pk", flat=True))
        if current.status != Document.Status.READY or chunk_ids != {c.pk for c in chunks}:
            raise Superseded
        if current.chunks.exclude(title=title).update(title=title):
            DocumentTerm.rebuild_for(current.pk)
        Embedding.objects.filter(chunk__document=current, model=provider.model_id).delete()
        Embedding.objects.bulk_create(
            [
                Embedding(chunk=chunk, model=provider.model_id, vector=vector)
                for chunk, vector in zip(chunks, vectors, strict=True)
            ],
            batch_size=500,
        )
        Document.objects.filter(pk=current.pk).update(
            embedding_model=provider.model_id, updated_at=timezone.now()
        )
        owner_id = current.owner_id
        transaction.on_commit(lambda: _invalidate_search(owner_id))
    return len(chunks)
