"""Uploaded files as local paths, whichever storage holds them.

Extraction (a child process) and pdfium read a file by its path. With the local disk
(FileSystemStorage, the default) that is the stored file itself; with an object store
(S3: STORAGE_S3_BUCKET) the file is downloaded first, through the storage API, never by
a path of its own: `local_copy()` to a temporary file removed afterwards (the worker),
`cached_copy()` once into a folder of this machine's page cache (the viewer, which
renders many pages of the same file; the folder goes with the document's page images).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from documents.models import Document

CHUNK = 1 << 20


class StoreUnavailable(Exception):
    """The object store did not take or give the file (down, refused, timed out): try
    again later."""


def local_path(document: Document) -> Path | None:
    """The stored file's own path when its storage is a local disk, else None."""
    try:
        return Path(document.file.storage.path(document.file.name))
    except NotImplementedError:  # an object store has no paths
        return None


def _download(document: Document, target: Path) -> None:
    """Copy the stored file to target atomically (a temporary name, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, document.file.storage.open(document.file.name) as src:
            shutil.copyfileobj(src, out, CHUNK)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, Exception) and not isinstance(exc, OSError):
            # botocore's connection and service errors, whatever the store answered
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise


@contextlib.contextmanager
def local_copy(document: Document) -> Iterator[Path]:
    """The document's file as a local path for the duration of the block. Raises
    FileNotFoundError when it is not stored, StoreUnavailable when the store fails."""
    path = local_path(document)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(path)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="rra-file-") as folder:
        target = Path(folder) / Path(document.file.name).name
        _download(document, target)
        yield target


def cached_copy(document: Document, folder: Path) -> Path:
    """The document's file as a local path that stays: the stored file on a local disk,
    else a copy downloaded once into folder (named by the file's sha256, so a file
    replaced under the same document is never served from an old copy)."""
    path = local_path(document)
    if path is not None:
        return path
    target = folder / f"source-{document.sha256[:32] or 'unknown'}{Path(document.file.name).suffix}"
    if not target.is_file():
        _download(document, target)
    return target
