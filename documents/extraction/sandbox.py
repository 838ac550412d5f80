"""Extraction in a child process with memory and time limits (and in process, for tests)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
import traceback
from multiprocessing.connection import wait
from pathlib import Path

from documents.extraction.common import (
    CRASHED,
    MB,
    OUT_OF_MEMORY,
    TIMEOUT,
    UNEXPECTED,
    UNSUPPORTED,
    ExtractionFailed,
    Limits,
    ProgressCallback,
)
from documents.extraction.docx import extract_docx
from documents.extraction.pdf import extract_pdf
from documents.extraction.text import extract_markdown, extract_text, read_text
from documents.filetypes import (
    DOCX,
    MARKDOWN,
    PDF,
    TEXT,
)
from documents.types import Block, Extraction, Page

logger = logging.getLogger(__name__)

# ============================================================================ entry points


def extract_in_process(
    path: Path,
    mime: str,
    *,
    limits: Limits | None = None,
    on_progress: ProgressCallback | None = None,
) -> Extraction:
    """Extract in this process (no memory or time limit; the page and zip limits apply)."""
    limits = limits or Limits()
    path = Path(path)
    progress = on_progress or _no_progress
    if mime == PDF:
        return extract_pdf(path, limits, progress)
    if mime == DOCX:
        return extract_docx(path, limits, progress)
    if mime in (MARKDOWN, TEXT):
        progress(0, 1)
        text = read_text(path, limits.max_chars)
        extraction = extract_markdown(text) if mime == MARKDOWN else extract_text(text)
        progress(1, 1)
        return extraction
    raise ExtractionFailed(UNSUPPORTED.format(mime=mime))


def extract_file(
    path: Path,
    mime: str,
    *,
    limits: Limits | None = None,
    on_progress: ProgressCallback | None = None,
) -> Extraction:
    """Extract in a child process with the memory and time limits of `limits`.

    `on_progress(pages_done, pages_total)` is called in this (the parent) process.
    Raises ExtractionFailed; the child is always gone when this returns.
    """
    limits = limits or Limits()
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_child_main,
        args=(sender, str(path), mime, limits),
        name="rra-extraction",
        daemon=True,
    )
    deadline = time.monotonic() + limits.timeout_s
    child.start()
    sender.close()
    try:
        payload = _receive(receiver, child, deadline, limits, on_progress)
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)
        receiver.close()
    return _unpack(payload)


# ===================================================================== child process plumbing

_EXIT_MEMORY = 86  # the child ran out of memory and could not even report it
# pdfium aborts when an allocation fails; the kernel's OOM killer sends SIGKILL.
_MEMORY_SIGNALS = (signal.SIGABRT, signal.SIGKILL)
_PROGRESS_INTERVAL_S = 0.1
_context_cache: multiprocessing.context.BaseContext | None = None


def _context() -> multiprocessing.context.BaseContext:
    """The forkserver context (spawn where forkserver does not exist).

    The fork server is a fresh single-threaded interpreter started once; it preloads
    this module and the parsers, so each extraction child is a cheap fork of it and
    never a fork of the (threaded) caller.
    """
    global _context_cache
    if _context_cache is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([__name__, "pypdfium2", "docx", "lxml.etree"])
        else:  # pragma: no cover - not Linux
            ctx = multiprocessing.get_context("spawn")
        _context_cache = ctx
    return _context_cache


def _receive(receiver, child, deadline: float, limits: Limits, on_progress) -> tuple:
    """Read the child's messages until its result; turn its failures into ExtractionFailed."""
    child_exited = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            child.kill()
            raise ExtractionFailed(TIMEOUT.format(seconds=limits.timeout_s))
        ready = wait([receiver, child.sentinel], remaining)
        if not ready:
            continue
        if receiver in ready or receiver.poll():
            try:
                message = receiver.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "progress":
                if on_progress is not None:
                    on_progress(message[1], message[2])
            elif kind == "ok":
                return message[1]
            elif kind == "failed":
                raise ExtractionFailed(message[1])
            elif kind == "memory":
                raise ExtractionFailed(OUT_OF_MEMORY.format(mb=limits.memory_mb))
            elif kind == "crash":
                logger.error("extraction child crashed: %s", message[2])
                raise ExtractionFailed(UNEXPECTED.format(detail=message[1]))
            continue
        if child_exited:
            break
        child_exited = True  # read what it may still have written, then give up
    child.join(10)
    code = child.exitcode
    if code is not None and code < 0 and -code not in _MEMORY_SIGNALS:
        logger.warning("extraction child died with exit code %s", code)
        raise ExtractionFailed(CRASHED.format(signal=_signal_name(-code)))
    if code == _EXIT_MEMORY or (code is not None and code < 0):
        logger.warning("extraction child died with exit code %s", code)
        raise ExtractionFailed(OUT_OF_MEMORY.format(mb=limits.memory_mb))
    raise ExtractionFailed(
        UNEXPECTED.format(detail=f"the extraction process exited with code {code}.")
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _child_main(sender, path: str, mime: str, limits: Limits) -> None:
    """Runs in the child: limit memory, extract, send the result (or the failure)."""
    try:
        _limit_memory(limits.memory_mb)
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done in (0, total) or now - last >= _PROGRESS_INTERVAL_S:
                last = now
                sender.send(("progress", done, total))

        extraction = extract_in_process(Path(path), mime, limits=limits, on_progress=progress)
        payload = _pack(extraction)
        del extraction
        sender.send(("ok", payload))
    except ExtractionFailed as exc:
        sender.send(("failed", exc.reason))
    except MemoryError:
        try:
            sender.send(("memory",))
        except BaseException:
            os._exit(_EXIT_MEMORY)
    except BaseException as exc:
        detail = f"{type(exc).__name__}: {exc}"[:500]
        try:
            sender.send(("crash", detail, traceback.format_exc()))
        except MemoryError:
            os._exit(_EXIT_MEMORY)
    finally:
        sender.close()


def _limit_memory(memory_mb: int) -> None:
    import resource

    limit = memory_mb * MB
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _pack(extraction: Extraction) -> tuple:
    """A compact picklable form: tuples, and no block text that is just a page-text slice."""
    texts = {page.number: page.text for page in extraction.pages}
    blocks = []
    for b in extraction.blocks:
        text = None if texts[b.page][b.start : b.end] == b.text else b.text
        blocks.append((b.page, b.kind, text, b.start, b.end, b.headings, b.level))
    pages = [(p.number, p.text, p.width, p.height) for p in extraction.pages]
    return extraction.mime, pages, blocks, extraction.metadata


def _unpack(payload: tuple) -> Extraction:
    mime, page_tuples, block_tuples, metadata = payload
    pages = [Page(*t) for t in page_tuples]
    texts = {page.number: page.text for page in pages}
    blocks = [
        Block(
            page=page,
            kind=kind,
            text=texts[page][start:end] if text is None else text,
            start=start,
            end=end,
            headings=list(headings),
            level=level,
        )
        for page, kind, text, start, end, headings, level in block_tuples
    ]
    return Extraction(mime=mime, pages=pages, blocks=blocks, metadata=metadata)


def _no_progress(done: int, total: int) -> None:
    pass
