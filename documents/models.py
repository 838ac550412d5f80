from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import VectorField

MIME_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "text/markdown": ".md",
    "text/plain": ".txt",
}


def pages_label(first: int, last: int) -> str:
    """How a page span is shown: "p. 3" or "pp. 3–4"."""
    return f"p. {first}" if first == last else f"pp. {first}–{last}"


SECTION_MARK = "§ "
SECTION_LABEL_PARTS = 2  # the section and its parent: "§ Networking › Proxy server for APT"


def section_label(section: str) -> str:
    """How a section path ("Manual › Networking › Proxy server") is named in a list of
    sources: "§ Networking › Proxy server" (its last two headings), "" without one."""
    parts = [part.strip() for part in section.split(" › ") if part.strip()]
    return SECTION_MARK + " › ".join(parts[-SECTION_LABEL_PARTS:]) if parts else ""


def location_label(first: int, last: int, section: str, *, paged: bool) -> str:
    """Where a passage is: its pages in a paginated document (PDF, Markdown with page
    marks), else its section ("p. 1" would say nothing about a Markdown, text or DOCX
    manual); "" for an unpaginated document without headings."""
    return pages_label(first, last) if paged else section_label(section)


def is_paged(mime_type: str, page_count: int) -> bool:
    """Whether a document's page numbers mean something: a PDF, or a document whose
    extraction found page marks (a converted Markdown file has more than one page)."""
    return mime_type == "application/pdf" or page_count > 1


def stored_file_name(instance: Document, filename: str) -> str:
    """Files are stored under a UUID name; the user's file name is never a path."""
    return f"documents/{uuid.uuid4().hex}{MIME_EXTENSIONS.get(instance.mime_type, '')}"


class _EveryDocument:
    """The reader of operator tools (evaluation, benchmarks) that search every document.
    Never a request's user: no user, admins included, reads another user's private
    documents through search, answers or citations."""

    pk = None
    is_authenticated = True
    is_staff = False

    def __repr__(self) -> str:
        return "EVERY_DOCUMENT"


EVERY_DOCUMENT = _EveryDocument()


class DocumentQuerySet(models.QuerySet):
    def readable_by(self, user) -> DocumentQuerySet:
        """What a user may read: their own documents and everything shared. The same for
        admins (they manage other users' documents in Django admin)."""
        if user is EVERY_DOCUMENT:
            return self
        if not user.is_authenticated:
            return self.none()
        return self.filter(Q(owner=user) | Q(visibility=Document.Visibility.SHARED))

    def changeable_by(self, user) -> DocumentQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self if user.is_staff else self.filter(owner=user)

    def ready(self) -> DocumentQuerySet:
        return self.filter(status=Document.Status.READY)

    def in_progress(self) -> DocumentQuerySet:
        return self.filter(status__in=Document.IN_PROGRESS)


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        EXTRACTING = "extracting", "Extracting text"
        CHUNKING = "chunking", "Splitting into passages"
        EMBEDDING = "embedding", "Embedding"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private"
        SHARED = "shared", "Shared with everyone"

    IN_PROGRESS = (Status.EXTRACTING, Status.CHUNKING, Status.EMBEDDING)

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="documents",
        db_index=False,  # document_owner_idx below
    )
    name = models.CharField(max_length=255, help_text="Display name, from the uploaded file.")
    file = models.FileField(upload_to=stored_file_name, max_length=255)
    mime_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    failure_reason = models.TextField(blank=True)
    pages_done = models.PositiveIntegerField(default=0)
    pages_total = models.PositiveIntegerField(default=0)
    chunks_embedded = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    # Processing bookkeeping: a worker claims the document with a fresh token and keeps
    # heartbeat_at fresh; stale claims are re-queued (documents.services).
    attempts = models.PositiveSmallIntegerField(default=0)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    # The embedding model that search uses for this document's chunks.
    embedding_model = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status"], name="document_status_idx"),
            models.Index(fields=["owner"], name="document_owner_idx"),
            models.Index(fields=["name"], name="document_name_idx"),
            models.Index(fields=["created_at"], name="document_created_at_idx"),
            models.Index(fields=["owner", "status"], name="document_owner_status_idx"),
            # With the one above, what a user may read (own OR shared, and ready for
            # search) is a BitmapOr of two index scans instead of a scan of the table.
            models.Index(fields=["visibility", "status"], name="document_visibility_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["owner", "sha256"], name="document_owner_sha256_uniq")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def progress(self) -> float:
        """0..1 over the whole pipeline: extraction is ~30 %, embedding ~70 % of the work."""
        if self.status == self.Status.READY:
            return 1.0
        extract = self.pages_done / self.pages_total if self.pages_total else 0.0
        embed = self.chunks_embedded / self.chunks_total if self.chunks_total else 0.0
        if self.status in (self.Status.QUEUED, self.Status.FAILED):
            return 0.0
        if self.status == self.Status.EXTRACTING:
            return 0.3 * extract
        return 0.3 + 0.7 * embed

    def eta_seconds(self, now=None) -> float | None:
        """Remaining time extrapolated from the progress so far (None when unknown)."""
        if self.status not in self.IN_PROGRESS or not self.processing_started_at:
            return None
        progress = self.progress
        if progress <= 0.02:
            return None
        elapsed = ((now or timezone.now()) - self.processing_started_at).total_seconds()
        return round(max(0.0, elapsed * (1 - progress) / progress), 1)

    def rate(self, now=None) -> tuple[float, str] | None:
        """(per second, unit) so far: pages read while extracting, passages embedded
        while embedding, over the time since processing started (None before the first
        is done)."""
        if self.status not in self.IN_PROGRESS or not self.processing_started_at:
            return None
        if self.status == self.Status.EMBEDDING:
            done, unit = self.chunks_embedded, "passages"
        elif self.status == self.Status.EXTRACTING:
            done, unit = self.pages_done, "pages"
        else:
            return None
        elapsed = ((now or timezone.now()) - self.processing_started_at).total_seconds()
        if done <= 0 or elapsed <= 0:
            return None
        return round(done / elapsed, 2), unit


class DocumentContent(models.Model):
    """The extracted text, one entry per page."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, related_name="content")
    pages = models.JSONField(default=list, help_text="Text of each page, in order.")
    page_sizes = models.JSONField(default=list, help_text="[width, height] in points per page.")
    page_count = models.PositiveIntegerField(default=0)
    char_count = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    blocks = models.JSONField(
        default=list,
        blank=True,
        help_text="DOCX and plain text: [start, end, kind, level] of each block of page 1 "
        "(kind h, p, l or t), so the viewer shows headings, lists and tables. Markdown is "
        "rendered from its page text; PDFs have page images.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"content of {self.document_id} ({self.page_count} pages)"


class ChunkQuerySet(models.QuerySet):
    def readable_by(self, user) -> ChunkQuerySet:
        return self.filter(document__in=Document.objects.readable_by(user).ready())


class Chunk(models.Model):
    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )
    index = models.PositiveIntegerField()
    first_page = models.PositiveIntegerField()
    last_page = models.PositiveIntegerField()
    section = models.TextField(blank=True)
    # The document's title (documents.chunking.document_title). Both search legs index it
    # with the content (the search vector here, the embedding input in
    # documents.chunking.index_text), so a passage is found by its manual's name and
    # section path; it is never quoted. Empty until `manage.py reindex` for chunks
    # stored before it existed.
    title = models.TextField(blank=True, default="")
    content = models.TextField()
    token_count = models.PositiveIntegerField()
    start_offset = models.PositiveIntegerField(help_text="Offset in the first page's text.")
    end_offset = models.PositiveIntegerField(help_text="Offset in the last page's text.")
    search_vector = models.GeneratedField(
        expression=SearchVector("title", "content", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = ChunkQuerySet.as_manager()

    class Meta:
        ordering = ["document", "index"]
        indexes = [
            models.Index(fields=["document"], name="chunk_document_idx"),
            models.Index(fields=["index"], name="chunk_index_idx"),
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["document", "index"], name="chunk_document_index_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.index} p.{self.first_page}-{self.last_page}"


class Embedding(models.Model):
    """A chunk's vector for one model. Vectors of any dimension share this column; each
    model gets its own partial HNSW index over `vector::vector(dims)` (see
    documents.vector_index), so adding a model needs no migration."""

    # (chunk, model) unique below serves lookups by chunk.
    chunk = models.ForeignKey(
        Chunk, on_delete=models.CASCADE, related_name="embeddings", db_index=False
    )
    model = models.CharField(max_length=100)
    vector = VectorField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["model"], name="embedding_model_idx")]
        constraints = [
            models.UniqueConstraint(fields=["chunk", "model"], name="embedding_chunk_model_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.model} vector of chunk {self.chunk_id}"


class DocumentTerm(models.Model):
    """How many of a document's chunks hold a lexeme (of Chunk.search_vector): the corpus
    statistics of the full-text leg's BM25 ranking and of the answer's relevance guard.
    Search sums them over the documents the user may read, so a private document's words
    never weigh in another user's ranking. Rewritten with the chunks on every ingest;
    deleted with the document."""

    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="terms", db_index=False
    )
    term = models.TextField()
    chunks = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # (term, document): search looks up a question's terms, then the readable docs.
            models.UniqueConstraint(fields=["term", "document"], name="documentterm_term_doc_uniq")
        ]
        indexes = [
            models.Index(fields=["document"], name="documentterm_document_idx"),
            # Search sums a term's counts over the readable documents: read from the
            # index alone (a third of the time at 100k chunks, bench/README search.py).
            models.Index(
                fields=["term"], include=["document", "chunks"], name="documentterm_term_cover_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.term!r} in {self.chunks} chunks of {self.document_id}"

    @classmethod
    def rebuild_for(cls, document_id: int) -> None:
        """Recount a document's terms from its stored chunks, and rewrite its chunks'
        postings (ChunkTerm), inside the caller's transaction, after the chunks are
        written."""
        from django.db import connection

        ChunkTerm.rebuild_for(document_id)
        cls.objects.filter(document_id=document_id).delete()
        # ts_stat takes the text of a query; the id is an int, nothing else goes in.
        chunks = f"SELECT search_vector FROM documents_chunk WHERE document_id = {int(document_id)}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO documents_documentterm (document_id, term, chunks) "
                "SELECT %s, word, ndoc FROM ts_stat(%s)",
                [document_id, chunks],
            )


# BM25 (the usual parameters). The length normalisation divides by a fixed average
# length, the chunker's target (CHUNK_TARGET_TOKENS, 400), rather than by the library's
# running average: a stored weight then never goes stale as the library grows. Another
# value changes every stored weight: `manage.py rebuild_terms` after changing it
# (bench/README, search.py: 400 against 250 on the evaluation).
BM25_K1 = 1.2
BM25_B = 0.75
BM25_AVG_LEN = 400.0


def bm25_weight_sql(tf: str, length: str) -> str:
    """SQL of a term's BM25 weight in a chunk without its idf: tf saturated by k1 and
    normalised by the chunk's length (its token_count). `tf` and `length` are SQL
    expressions."""
    tf = f"({tf})::float8"
    return (
        f"({tf} * {BM25_K1 + 1} / ({tf} + {BM25_K1}"
        f" * (1 - {BM25_B} + {BM25_B} * ({length})::float8 / {BM25_AVG_LEN})))"
    )


class ChunkTerm(models.Model):
    """A posting of the full-text leg: a lexeme of a chunk (of Chunk.search_vector) with
    its BM25 weight without the idf (bm25_weight_sql). The idf is the only part that
    depends on the rest of the library, and on who reads it: search computes it per
    question from DocumentTerm and multiplies. So a stored weight depends on its chunk
    alone, is written once with the chunk, never recomputed as the library grows; and per
    term, ordering by weight is ordering by score, which lets the text leg read the top
    of each of the question's terms from the (term, weight desc) index instead of scoring
    every chunk that holds one (documents.search). Rewritten with DocumentTerm
    (DocumentTerm.rebuild_for); deleted with the chunk."""

    pk = models.CompositePrimaryKey("chunk_id", "term")
    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="terms", db_index=False)
    term = models.TextField()
    # The chunk's document, copied so that the access filter is read from the index: no
    # foreign key (deletes go through the chunk, whose key leads the primary key).
    document_id = models.BigIntegerField()
    weight = models.FloatField()

    class Meta:
        indexes = [
            models.Index(
                fields=["term", "-weight"],
                include=["document_id", "chunk"],
                name="chunkterm_term_weight_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.term!r} in chunk {self.chunk_id}: {self.weight:.3f}"

    @classmethod
    def rebuild_for(cls, document_id: int) -> None:
        """Rewrite the postings of a document's chunks from their stored search vectors."""
        from django.db import connection

        document_id = int(document_id)
        with connection.cursor() as cursor:
            # The chunk ids as one array first (an InitPlan), then the primary key's
            # index: an IN (subquery) left to the planner on fresh, unanalyzed tables
            # became a nested loop of sequential scans (25 s a document at 225k postings).
            cursor.execute(
                "DELETE FROM documents_chunkterm WHERE chunk_id = ANY(ARRAY("
                "SELECT id FROM documents_chunk WHERE document_id = %s))",
                [document_id],
            )
            cursor.execute(postings_sql("c.document_id = %s"), [document_id])


def postings_sql(where: str) -> str:
    """INSERT of the postings of the chunks `c` (documents_chunk) that `where` selects."""
    weight = bm25_weight_sql("COALESCE(array_length(t.positions, 1), 1)", "c.token_count")
    # Fixed SQL; values are the caller's bound parameters.
    return (
        "INSERT INTO documents_chunkterm (chunk_id, term, document_id, weight)"  # noqa: S608
        f" SELECT c.id, t.lexeme, c.document_id, {weight}"
        f" FROM documents_chunk c CROSS JOIN LATERAL unnest(c.search_vector) t WHERE {where}"
    )
