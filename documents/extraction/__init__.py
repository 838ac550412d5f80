"""Text extraction from uploaded documents, in a child process with limits.

`extract_file()` is what the ingestion pipeline calls: the work runs in a child process
(multiprocessing "forkserver": the Django parent is threaded and holds DB connections,
so it must never fork) with an address-space limit (RLIMIT_AS) set in the child and a
wall-time limit enforced by the parent, which kills the child. Progress (pages done,
pages total) flows back through a pipe. Every failure becomes ExtractionFailed with a
`reason` that can be shown to the person who uploaded the file.

`extract_in_process()` does the same extraction without a child (no memory or time
limit); the child calls it, and tests use it for speed.

Modules: `sandbox` (the child process and its limits), `pdf` (pypdfium2), `docx`
(python-docx), `text` (Markdown and plain text), `common` (limits, the reasons shown to
people, block helpers). The output is documents.types.Extraction: pages with their text,
and blocks (headings, paragraphs, list items, tables) with offsets into the page text
and the heading path.
"""

from documents.extraction.common import MAX_BLOCK_CHARS, ExtractionFailed, Limits
from documents.extraction.sandbox import extract_file, extract_in_process

__all__ = ["MAX_BLOCK_CHARS", "ExtractionFailed", "Limits", "extract_file", "extract_in_process"]
