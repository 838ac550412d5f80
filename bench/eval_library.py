"""The issue-20 evaluation library: real manuals from Debian's packages, their questions,
and RRA against plain baselines on them.

    .venv/bin/python bench/eval_library.py build [--dest var/eval-library]
    .venv/bin/python bench/eval_library.py check QUESTIONS... [--dest var/eval-library]
    nice -n 10 .venv/bin/python bench/eval_library.py eval QUESTIONS... [--only rra|bm25|vector|rrf]

build: installs the documentation packages when missing (apt-get, as root), then writes
DEST/docs/: the Debian Reference chapters (English) and six PostgreSQL 15 chapters
converted from their HTML to Markdown by Debian's pandoc (navigation and tables of contents
dropped, links and images reduced to their text), the GNU findutils Info manual as plain
text (`info --subnodes`), and the PDFs (R manuals, gnuplot, Octave) copied as they are.
The German Debian Reference goes to DEST/reference-de/ (read when writing German
questions; not ingested). DEST/manifest.json lists each file with its format, size,
sha256 and page count (PDF pages; a Markdown or text file is one page).

check: each answerable question's facts must be found where it says, in OUR extraction
(documents.extraction, as ingestion runs it): in the text of the blocks whose heading path
contains `section` (Markdown, text), or on the `pages` (PDF). A second, softer check says
when no single chunk at the current chunking holds every fact (a hit needs one passage
holding them all). Exit status 1 when a question is broken.

eval: ingests DEST/docs once into its own database (EMBEDDED_DB_NAME=rra_eval_library)
through RRA's pipeline (extraction, chunking, embedding, storage), keyed by an index
fingerprint (the source of extraction, chunking and embeddings, and the chunking and model
settings): a re-run with the same fingerprint reuses it. Then prints hit@1 / hit@5 / MRR@10
per split (tune, held-out, fresh, fresh2, fresh3, fresh4, fresh5, fresh6) and per kind for RRA (hybrid, and its two legs) and the
baselines of bench/eval_baselines.py (plain BM25 over 1000-character chunks of the raw
text, MiniLM over 1000/100-character chunks with exact cosine, and their reciprocal rank
fusion), then what the answer path does (documents.evaluation.evaluate_answers).
Prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DEFAULT_DEST = ROOT / "var" / "eval-library"

PACKAGES = [
    "r-doc-pdf",
    "octave-doc",
    "gnuplot-doc",
    "postgresql-doc-15",
    "debian-reference-en",
    "debian-reference-de",
    "pandoc",
    "info",
    "findutils",
]
DEBIAN_REFERENCE = Path("/usr/share/debian-reference")
DEBIAN_REFERENCE_PARTS = [f"ch{n:02d}" for n in range(1, 13)] + ["apa"]
POSTGRESQL_HTML = Path("/usr/share/doc/postgresql-doc-15/html")
POSTGRESQL_CHAPTERS = {  # chapter page -> document name
    "backup.html": "postgresql-backup-and-restore.md",
    "runtime-config.html": "postgresql-server-configuration.md",
    "high-availability.html": "postgresql-high-availability.md",
    "client-authentication.html": "postgresql-client-authentication.md",
    "maintenance.html": "postgresql-routine-maintenance.md",
    "wal.html": "postgresql-reliability-and-wal.md",
}
R_MANUALS = Path("/usr/share/R/doc/manual")
# The R manuals but the 2,400-page reference index (refman.pdf, function help pages).
R_PDFS = ["R-intro", "R-admin", "R-data", "R-exts", "R-lang", "R-ints", "R-FAQ"]
OTHER_PDFS = [Path("/usr/share/doc/octave/octave.pdf"), Path("/usr/share/doc/gnuplot/gnuplot.pdf")]

# Pandoc filter: what a reader of the manual sees as text, without the web page around it.
LUA_FILTER = r"""
local drop = {navheader = true, navfooter = true, toc = true, ["list-of-tables"] = true,
              ["list-of-figures"] = true, ["list-of-examples"] = true}
local admonitions = {note = true, tip = true, important = true, caution = true, warning = true}

local function each_cell(tbl, fn)
  local function rows(list) for _, row in ipairs(list) do for _, cell in ipairs(row.cells) do fn(cell) end end end
  rows(tbl.head.rows)
  for _, body in ipairs(tbl.bodies) do rows(body.head); rows(body.body) end
  rows(tbl.foot.rows)
end

-- A note, tip or warning: its title as a bold line, then its text (Debian Reference lays
-- them out as a table with an icon; PostgreSQL's have a heading, which is not a section).
local function admonition(el)
  local out = {}
  local function add(block)
    if block.t == "Header" or block.t == "Plain" and #out == 0 then
      table.insert(out, pandoc.Para({pandoc.Strong(block.content)}))
    elseif block.t == "Table" then
      each_cell(block, function(cell) for _, b in ipairs(cell.contents) do add(b) end end)
    elseif block.t == "Div" then
      for _, b in ipairs(block.content) do add(b) end
    else
      table.insert(out, block)
    end
  end
  for _, block in ipairs(el.content) do add(block) end
  return out
end

-- A cell's blocks as one line of inlines, so that every table is a pipe table.
local function flat(blocks)
  local inlines = {}
  local function space() if #inlines > 0 then table.insert(inlines, pandoc.Space()) end end
  for _, b in ipairs(blocks) do
    if b.t == "Plain" or b.t == "Para" then
      space()
      for _, i in ipairs(b.content) do
        if i.t == "SoftBreak" or i.t == "LineBreak" then table.insert(inlines, pandoc.Space())
        else table.insert(inlines, i) end
      end
    elseif b.t == "CodeBlock" then
      space(); table.insert(inlines, pandoc.Code(b.text:gsub("%s+", " ")))
    else
      space(); table.insert(inlines, pandoc.Str(pandoc.utils.stringify(b)))
    end
  end
  return {pandoc.Plain(inlines)}
end

local function table_flat(tbl)
  each_cell(tbl, function(cell)
    cell.contents = flat(cell.contents)
    cell.row_span = 1
    cell.col_span = 1
  end)
  tbl.caption = {long = {}, short = nil}
  return tbl
end

local first = {
  Div = function(el)
    for _, c in ipairs(el.classes) do
      if drop[c] then return {} end
      if admonitions[c] then return admonition(el) end
    end
  end
}
local second = {
  Div = function(el) return el.content end,
  Span = function(el) return el.content end,
  Link = function(el) return el.content end,
  Image = function(el) return {} end,
  Table = table_flat,
  Header = function(el) el.attr = pandoc.Attr(); return el end,
  CodeBlock = function(el) el.attr = pandoc.Attr(); return el end,
  Code = function(el) el.attr = pandoc.Attr(); return el end,
}
return {first, second}
"""


# ===================================================================== build


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs)


def install_packages() -> None:
    missing = []
    for package in PACKAGES:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if "install ok installed" not in status.stdout:
            missing.append(package)
    if not missing:
        return
    print(f"installing {' '.join(missing)}")
    if os.geteuid() != 0:
        sys.exit(f"run as root or install first: apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    subprocess.run([*apt, "update"], check=True, env=env)
    subprocess.run(
        [*apt, "install", "-y", "--no-install-recommends", *missing], check=True, env=env
    )


def pandoc_markdown(sources: list[Path], filter_path: Path, shift: list[int]) -> str:
    """Each HTML file to GitHub Markdown (no raw HTML, no line wrapping), joined."""
    parts = []
    for source, by in zip(sources, shift, strict=True):
        args = ["pandoc", "-f", "html", "-t", "gfm-raw_html", "--wrap=none"]
        args += ["--lua-filter", str(filter_path), f"--shift-heading-level-by={by}", str(source)]
        parts.append(_run(*args).stdout.strip())
    text = "\n\n".join(parts) + "\n"
    # Pandoc escapes characters that would otherwise be markup; a reader sees them plain.
    return re.sub(r"\n{3,}", "\n\n", text)


def postgresql_sections(chapter: Path) -> list[Path]:
    """The chapter's section pages, in the order of its table of contents."""
    html = chapter.read_text(encoding="utf-8")
    toc = html[html.find('class="toc"') :]
    seen: list[str] = []
    for name in re.findall(r'<span class="sect1"><a href="([^"#]+)', toc):
        if name not in seen:
            seen.append(name)
    return [chapter.parent / name for name in seen]


def pdf_pages(path: Path) -> int:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        return len(pdf)
    finally:
        pdf.close()


def build(dest: Path) -> None:
    install_packages()
    docs = dest / "docs"
    german = dest / "reference-de"
    for folder in (docs, german):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    filter_path = dest / "plain.lua"
    filter_path.write_text(LUA_FILTER, encoding="utf-8")

    for part in DEBIAN_REFERENCE_PARTS:
        text = pandoc_markdown([DEBIAN_REFERENCE / f"{part}.en.html"], filter_path, [0])
        (docs / f"debian-reference-{part}.md").write_text(text, encoding="utf-8")
        de = pandoc_markdown([DEBIAN_REFERENCE / f"{part}.de.html"], filter_path, [0])
        (german / f"debian-reference-{part}.de.md").write_text(de, encoding="utf-8")
    for page, name in POSTGRESQL_CHAPTERS.items():
        chapter = POSTGRESQL_HTML / page
        sections = postgresql_sections(chapter)
        # Chapter and section pages all title with <h2>: sections go one level down.
        text = pandoc_markdown([chapter, *sections], filter_path, [0] + [1] * len(sections))
        (docs / name).write_text(text, encoding="utf-8")
    info = _run("info", "--subnodes", "-o", "-", "-f", "find").stdout
    (docs / "find.txt").write_text(info, encoding="utf-8")
    for name in R_PDFS:
        shutil.copyfile(R_MANUALS / f"{name}.pdf", docs / f"{name}.pdf")
    for path in OTHER_PDFS:
        shutil.copyfile(path, docs / path.name)
    filter_path.unlink()

    files = []
    for path in sorted(docs.iterdir()):
        kind = path.suffix.lstrip(".")
        data = path.read_bytes()
        files.append(
            {
                "name": path.name,
                "format": kind,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "pages": pdf_pages(path) if kind == "pdf" else 1,
            }
        )
    versions = {
        p: _run("dpkg-query", "-W", "-f=${Version}", p).stdout for p in PACKAGES if p != "findutils"
    }
    manifest = {"packages": versions, "files": files}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    by_format: dict[str, list[int]] = {}
    for f in files:
        by_format.setdefault(f["format"], []).append(f["pages"])
    for kind, pages in sorted(by_format.items()):
        print(f"{kind:>4}: {len(pages):>3} files, {sum(pages):>5} pages")
    total = sum(f["pages"] for f in files)
    print(f"total: {len(files)} files, {total} pages (a Markdown or text file counts as one)")
    print(f"wrote {docs} and {dest / 'manifest.json'}")
    if total < 2000:
        sys.exit("fewer than 2,000 pages: the library is incomplete")


# ===================================================================== shared


def django_setup() -> None:
    """Production-like settings on the library's own database, as the other bench scripts."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "rra.settings",
            "ENV_FILE": "",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "EMBEDDED_REDIS": "false",
        }
    )
    os.environ.setdefault("LOG_LEVEL", "ERROR")  # not the slow-query warnings of a busy machine
    os.environ.setdefault("EMBEDDED_DB_NAME", "rra_eval_library")
    # Ingestion limits sized for the library (octave.pdf: 1,158 pages on a busy machine).
    os.environ.setdefault("EXTRACTION_TIMEOUT_S", "3600")
    os.environ.setdefault("EXTRACTION_MEMORY_MB", "4096")
    import django

    django.setup()


MIME = {".pdf": "application/pdf", ".md": "text/markdown", ".txt": "text/plain"}


def library_files(dest: Path) -> list[Path]:
    docs = dest / "docs"
    if not (dest / "manifest.json").exists():
        sys.exit(f"no library at {dest}: run `bench/eval_library.py build` first")
    return sorted(p for p in docs.iterdir() if p.suffix in MIME)


def extract(path: Path):
    """OUR extraction of a library file, as ingestion runs it (without the child process)."""
    from documents.extraction import extract_in_process
    from documents.services import extraction_limits

    return extract_in_process(path, MIME[path.suffix], limits=extraction_limits())


def block_path(block) -> str:
    from documents.chunking import SECTION_SEPARATOR

    path = [" ".join(h.split()) for h in block.headings if h.strip()]
    if block.kind == "heading" and (not path or path[-1] != " ".join(block.text.split())):
        path.append(" ".join(block.text.split()))
    return SECTION_SEPARATOR.join(path)


def load_questions(paths: list[Path]) -> list:
    from documents.evaluation import BadEvalFile, load_cases

    cases = []
    for path in paths:
        try:
            cases += load_cases(path)
        except BadEvalFile as exc:
            sys.exit(str(exc))
    return cases


# ===================================================================== check


def check(dest: Path, questions: list[Path]) -> int:
    """Each answerable question's facts where it says they are, in OUR extraction."""
    from django.conf import settings

    from documents.chunking import chunk_extraction
    from documents.embeddings import get_provider
    from documents.evaluation import holds_facts, in_section, is_relevant

    files = {p.name: p for p in library_files(dest)}
    provider = get_provider()
    extractions, chunks = {}, {}
    broken = split = 0
    for questions_path in questions:
        for case in load_questions([questions_path]):
            where = f"{questions_path}:{case.line}"
            if not case.answerable:
                continue
            if case.doc not in files:
                print(f"{where}: no document {case.doc} in the library")
                broken += 1
                continue
            if case.doc not in extractions:
                extractions[case.doc] = extract(files[case.doc])
                chunks[case.doc] = [
                    SimpleHit(case.doc, d.first_page, d.last_page, d.section, d.content)
                    for d in chunk_extraction(
                        extractions[case.doc],
                        target_tokens=min(settings.CHUNK_TARGET_TOKENS, provider.max_input_tokens),
                        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
                        count_tokens=provider.count_tokens,
                    )
                ]
            extraction = extractions[case.doc]
            if not case.section and not case.pages:
                print(f"{where}: names neither a section nor pages")
                broken += 1
                continue
            if case.section:
                text = "\n".join(
                    b.text for b in extraction.blocks if in_section(block_path(b), case.section)
                )
                if not text:
                    print(f"{where}: no heading {case.section!r} in {case.doc}")
                    broken += 1
                    continue
                place = f"section {case.section!r}"
            else:
                wanted = [p for p in case.pages if p <= extraction.page_count]
                if len(wanted) != len(case.pages):
                    print(f"{where}: {case.doc} has {extraction.page_count} pages: {case.pages}")
                    broken += 1
                    continue
                text = "\n".join(extraction.pages[p - 1].text for p in wanted)
                place = f"pages {list(case.pages)}"
            missing = [f for f in case.facts if not holds_facts(text, (f,))]
            if missing:
                print(f"{where}: {missing} not in {case.doc} {place}")
                broken += 1
            elif not any(is_relevant(c, case) for c in chunks[case.doc]):
                print(f"{where}: (note) no single chunk holds every fact: {case.question}")
                split += 1
    total = len(load_questions(questions))
    print(f"{total} questions: {broken} broken, {split} with facts spread over chunks")
    return 1 if broken else 0


class SimpleHit:
    """A passage as documents.evaluation.is_relevant reads it."""

    def __init__(self, document_name, first_page, last_page, section, content) -> None:
        self.document_name, self.first_page, self.last_page = document_name, first_page, last_page
        self.section, self.content = section, content


# ===================================================================== eval

SYSTEMS = ["rra", "bm25", "vector", "rrf"]
RRA_MODES = {"rra hybrid": "hybrid", "rra text leg": "text", "rra vector leg": "vector"}
INDEX_SOURCES = [
    "documents/extraction",
    "documents/filetypes.py",
    "documents/chunking.py",
    "documents/embeddings",
    "documents/services.py",
    "documents/types.py",
    "documents/models.py",
    "documents/migrations",
]
OWNER = "eval-library@example.invalid"


def code_fingerprint() -> str:
    """What an ingested document depends on besides its file: the code that extracts,
    chunks, embeds and stores it, and the chunking and model settings."""
    from django.conf import settings

    from documents.embeddings import get_provider

    digest = hashlib.sha256()
    for source in INDEX_SOURCES:
        path = ROOT / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    setting = f"{settings.CHUNK_TARGET_TOKENS}/{settings.CHUNK_OVERLAP_TOKENS}/"
    digest.update((setting + get_provider().model_id).encode())
    return digest.hexdigest()


def ingest(files: list[Path], library: list[Path]) -> list[int]:
    """`files` (the library or a slice of it) in the eval database through RRA's pipeline;
    a document whose file and code fingerprint are unchanged since it was ingested is
    kept (an interrupted run resumes where it stopped). Returns the ids of `files`."""
    import time

    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.db import connection

    from documents.models import Document
    from documents.services import (
        document_create,
        document_delete,
        document_ingest,
        document_validate_upload,
    )

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS eval_library_index (name text PRIMARY KEY, fingerprint text)"
        )
        cursor.execute("SELECT name, fingerprint FROM eval_library_index")
        done = dict(cursor.fetchall())
    code = code_fingerprint()
    owner, _ = get_user_model().objects.get_or_create(email=OWNER)
    for document in Document.objects.exclude(name__in=[p.name for p in library]):
        document_delete(document=document)  # no longer in the library
    started = time.monotonic()
    # Small and quick first: a slice (--formats md,txt) is ready before the PDFs are.
    for path in sorted(files, key=lambda p: (p.suffix == ".pdf", p.name)):
        data = path.read_bytes()
        fingerprint = hashlib.sha256(code.encode() + hashlib.sha256(data).digest()).hexdigest()
        existing = list(Document.objects.filter(name=path.name))
        ready = len(existing) == 1 and existing[0].status == Document.Status.READY
        if ready and done.get(path.name) == fingerprint:
            continue
        for document in existing:
            document_delete(document=document)
        t0 = time.monotonic()
        upload = ContentFile(data, name=path.name)
        mime = document_validate_upload(upload=upload)
        result = document_create(owner=owner, upload=upload, mime_type=mime, enqueue=False)
        status = document_ingest(document_id=result.document.pk)
        document = Document.objects.get(pk=result.document.pk)
        print(
            f"  ingested {path.name}: {status}, {document.pages_total} pages, "
            f"{document.chunks_total} chunks, {time.monotonic() - t0:.0f} s",
            flush=True,
        )
        if status != "ready":
            sys.exit(f"{path.name} failed: {document.failure_reason}")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO eval_library_index VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
                [path.name, fingerprint],
            )
    ready = Document.objects.filter(status=Document.Status.READY, name__in=[p.name for p in files])
    chunks = sum(d.chunks_total for d in ready)
    print(
        f"index: {ready.count()} documents, {chunks} chunks "
        f"({time.monotonic() - started:.0f} s of ingestion in this run)"
    )
    return list(ready.values_list("pk", flat=True))


class Ranks:
    """hit@1 / hit@5 / MRR@10 of one system, grouped: all, split, kind, split/kind."""

    def __init__(self) -> None:
        from documents.evaluation import Score

        self.groups = {}
        self._score = Score

    def add(self, case, rank) -> None:
        for key in ("all", case.split, f"all/{case.kind}", f"{case.split}/{case.kind}"):
            self.groups.setdefault(key, self._score()).add(rank)

    def finished(self) -> dict:
        return {key: score.finished() for key, score in self.groups.items()}


def rank_rra(cases: list, mode: str, document_ids: list[int] | None) -> Ranks:
    from documents.evaluation import is_relevant, search_query
    from documents.models import EVERY_DOCUMENT
    from documents.search import search

    ranks = Ranks()
    for case in cases:
        hits = search(
            user=EVERY_DOCUMENT,
            query=search_query(case),
            k=10,
            mode=mode,
            document_ids=document_ids,
        ).hits
        ranks.add(case, next((i for i, h in enumerate(hits, 1) if is_relevant(h, case)), None))
    return ranks


def baseline_windows(files: list[Path], size: int, overlap: int) -> list[SimpleHit]:
    """eval_baselines' windows of each file's raw text (a PDF's pdfium page text; a
    Markdown or text file's own text), with the heading titles of the blocks each
    window overlaps, so a `section` question can be judged as for RRA's passages."""
    from eval_baselines import chunks_of, windows

    from documents.chunking import SECTION_SEPARATOR

    out = []
    for path in files:
        if path.suffix == ".pdf":
            found = chunks_of(path, size, overlap)
            spans = []
        else:
            extraction = extract(path)
            found = windows(path.name, [p.text for p in extraction.pages], size, overlap)
            offset, starts = 0, {}
            for page in extraction.pages:
                starts[page.number] = offset
                offset += len(page.text) + 1
            spans = [
                (starts[b.page] + b.start, starts[b.page] + b.end, block_path(b))
                for b in extraction.blocks
            ]
        for w in found:
            titles: list[str] = []
            for start, end, path_text in spans:
                if start < w["end"] and end > w["start"]:
                    titles += [t for t in path_text.split(SECTION_SEPARATOR) if t not in titles]
            section = SECTION_SEPARATOR.join(titles)
            out.append(SimpleHit(w["doc"], w["first"], w["last"], section, w["text"]))
    return out


def rank_list(cases: list, windows: list, ranked) -> Ranks:
    from documents.evaluation import is_relevant

    ranks = Ranks()
    for case in cases:
        top = [windows[i] for i in ranked(case)[:10]]
        ranks.add(case, next((i for i, w in enumerate(top, 1) if is_relevant(w, case)), None))
    return ranks


def vector_matrix(dest: Path, windows: list):
    """MiniLM vectors of the windows, cached under DEST window by window (keyed by the
    sha256 of the window's text, per model), so a slice of the library (--formats,
    --only-docs) reuses the whole library's vectors and embeds only windows never seen.
    A whole-set cache of an earlier version (baseline-vectors-<digest>.npy) is read too."""
    import numpy as np

    from documents.embeddings import LocalProvider

    provider = LocalProvider()
    keys = [hashlib.sha256(w.content.encode()).hexdigest() for w in windows]
    model = hashlib.sha256(provider.model_id.encode()).hexdigest()[:12]
    store = dest / f"baseline-rows-{model}.npz"
    known: dict[str, np.ndarray] = {}
    if store.exists():
        data = np.load(store)
        known.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
    digest = hashlib.sha256(provider.model_id.encode())
    for w in windows:
        digest.update(w.content.encode() + b"\0")
    legacy = dest / f"baseline-vectors-{digest.hexdigest()[:16]}.npy"
    if legacy.exists():
        known.update(zip(keys, np.load(legacy), strict=True))
    todo = list(dict.fromkeys(k for k in keys if k not in known))
    if todo or (legacy.exists() and not store.exists()):
        if todo:
            print(f"  embedding {len(todo)} baseline windows (cached in {store.name})", flush=True)
            text = {k: w.content for k, w in zip(keys, windows, strict=True)}
            vectors = provider.embed_documents([text[k] for k in todo])
            known.update(zip(todo, np.array(vectors, dtype=np.float32), strict=True))
        np.savez(store, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return provider, np.stack([known[k] for k in keys]).astype(np.float32)


def rank_baselines(dest: Path, files: list[Path], cases: list, only: str | None) -> dict:
    import numpy as np
    from eval_baselines import BM25

    results = {}
    if only in (None, "bm25"):
        plain = baseline_windows(files, 1000, 0)
        bm25 = BM25([w.content for w in plain])
        results["plain BM25, 1000-char"] = rank_list(
            cases, plain, lambda c: np.argsort(-np.array(bm25.scores(c.question)), kind="stable")
        )
    if only in (None, "vector", "rrf"):
        windows = baseline_windows(files, 1000, 100)
        provider, matrix = vector_matrix(dest, windows)

        def by_vector(case):
            return np.argsort(-(matrix @ np.array(provider.embed_query(case.question))))

        if only in (None, "vector"):
            results["vector, 1000/100-char MiniLM"] = rank_list(cases, windows, by_vector)
        if only in (None, "rrf"):
            bm25 = BM25([w.content for w in windows])

            def by_fusion(case, k=60, depth=100):
                fused: dict[int, float] = {}
                text = np.argsort(-np.array(bm25.scores(case.question)), kind="stable")
                for ranking in (text[:depth], by_vector(case)[:depth]):
                    for rank, i in enumerate(ranking, 1):
                        fused[int(i)] = fused.get(int(i), 0.0) + 1 / (k + rank)
                return sorted(fused, key=lambda i: -fused[i])

            results["RRF of both, 1000/100-char"] = rank_list(cases, windows, by_fusion)
    return results


def _cell(score) -> str:
    if score is None or not score.n:
        return "-"
    return f"{score.hit_at_5:.2f} ({score.hit_at_1:.2f}, {score.mrr:.2f})"


def print_tables(results: dict, cases: list) -> None:
    from documents.evaluation import SPLITS

    answerable = [c for c in cases if c.answerable]
    splits = [s for s in SPLITS if any(c.split == s for c in answerable)] + ["all"]
    counts = {s: sum(1 for c in answerable if s in ("all", c.split)) for s in splits}
    print("\nhit@5 (hit@1, MRR@10) of the answerable questions, by split")
    header = f"{'system':<30}" + "".join(f"{f'{s} ({counts[s]})':>22}" for s in splits)
    print(header)
    for name, ranks in results.items():
        groups = ranks.finished()
        print(f"{name:<30}" + "".join(f"{_cell(groups.get(s)):>22}" for s in splits))
    kinds = sorted({c.kind for c in answerable})
    print(f"\nhit@5 by kind ({' / '.join(splits)})")
    width = 6 * len(splits)  # "0.00/" per split and a space between columns
    print(f"{'kind':<12}{'n':>20}" + "".join(f"{name[: width - 2]:>{width}}" for name in results))
    for kind in kinds:
        n = "/".join(
            str(sum(1 for c in answerable if c.kind == kind and s in ("all", c.split)))
            for s in splits
        )
        row = f"{kind:<12}{n:>20}"
        for ranks in results.values():
            groups = ranks.finished()
            cells = []
            for s in splits:
                score = groups.get(f"{s}/{kind}")
                cells.append(f"{score.hit_at_5:.2f}" if score and score.n else "-")
            row += f"{'/'.join(cells):>{width}}"
        print(row)


def print_answers(cases: list) -> dict:
    from dataclasses import asdict

    from documents.evaluation import SPLITS, evaluate_answers

    answers = evaluate_answers(cases)

    def share(part: dict, whole: dict, split: str) -> str:
        n = whole.get(split, 0)
        return f"{part.get(split, 0)}/{n} ({part.get(split, 0) / n:.2f})" if n else "-"

    print("\nanswers (RRA's retrieval, guard and offline answerer; no model):")
    for split in SPLITS:
        if not answers.unanswerable.get(split) and not answers.answerable.get(split):
            continue
        wrongly = {split: answers.answerable.get(split, 0) - answers.kept.get(split, 0)}
        print(
            f"  {split}: unanswerable declined {share(answers.declined, answers.unanswerable, split)}"
            f" (offline {share(answers.offline_declined, answers.unanswerable, split)});"
            f" answerable wrongly declined {share(wrongly, answers.answerable, split)};"
            f" grounded (a relevant passage among the answer's) "
            f"{share(answers.grounded, answers.answerable, split)},"
            f" kept by the guard {share(answers.grounded_kept, answers.answerable, split)};"
            f" offline answer with every fact {share(answers.offline_facts, answers.answerable, split)}"
        )
    return asdict(answers)


def evaluate_library(
    dest: Path,
    questions: list[Path],
    only: str | None,
    formats: list[str],
    json_out,
    splits: list[str] | None = None,
    reuse: bool = False,
    only_docs: list[str] | None = None,
    cache: Path | None = None,
) -> None:
    import fnmatch

    from documents.models import Document

    every = library_files(dest)
    files = [p for p in every if p.suffix.lstrip(".") in formats]
    if only_docs:
        files = [p for p in files if any(fnmatch.fnmatch(p.name, g) for g in only_docs)]
    if reuse:  # the index as it is, its ready documents among `files` only: no writes
        ready = Document.objects.filter(
            status=Document.Status.READY, name__in=[p.name for p in files]
        )
        files = [p for p in files if p.name in set(ready.values_list("name", flat=True))]
    sliced = len(files) < len(every)
    names = {p.name for p in files}
    cases = [c for c in load_questions(questions) if not c.answerable or c.doc in names]
    if splits:  # tuning reads the tune split only: the others are never computed
        cases = [c for c in cases if c.split in splits]
    answerable = [c for c in cases if c.answerable]
    print(f"{len(cases)} questions ({len(answerable)} answerable) over {len(files)} files")
    # The answer path searches every ready document of the index: its metrics mean
    # something for a slice only when the index holds that slice and nothing else.
    indexed = set(
        Document.objects.filter(status=Document.Status.READY).values_list("name", flat=True)
    )
    answer_metrics = not sliced or indexed == names
    if sliced:
        print(
            f"a slice of the library ({', '.join(sorted(names))}): searched alone; "
            + (
                "answer metrics over it (the index holds nothing else)"
                if answer_metrics
                else "no answer metrics (the index holds other documents too)"
            )
        )
    results: dict = {}
    answers = None
    if only in (None, "rra"):
        document_ids = (
            list(Document.objects.filter(name__in=names).values_list("pk", flat=True))
            if reuse
            else ingest(files, every)
        )
        for name, mode in RRA_MODES.items():
            results[name] = rank_rra(answerable, mode, document_ids if sliced else None)
    results.update(rank_baselines(cache or dest, files, answerable, only))
    print_tables(results, cases)
    if only in (None, "rra") and answer_metrics:
        answers = print_answers(cases)
    if json_out:
        report = {
            name: {k: vars(v) for k, v in ranks.finished().items()}
            for name, ranks in results.items()
        }
        json_out.write_text(json.dumps({"retrieval": report, "answers": answers}, indent=1))
        print(f"\nwrote {json_out}")


# ===================================================================== tune


def _setting_value(raw: str):
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(raw.lower(), raw)


def tune(
    dest: Path,
    questions: list[Path],
    formats: list[str],
    grid: list[str],
    mode: str,
    docs=None,
    reuse: bool = False,
    only_docs: list[str] | None = None,
    kinds: list[str] | None = None,
    answers: Path | None = None,
) -> None:
    """RRA's search on the TUNE split only, once per combination of settings
    (NAME=v1,v2,...; read by search() at call time), on the index eval built (or, with
    `docs`, on that folder's files, e.g. ../shared/sample-docs for roborail.jsonl).
    `reuse`: search the database's index as it is, without ingesting (no writes);
    `only_docs`: only the files matching these patterns, and their questions; `kinds`:
    only the questions of these kinds (a setting that changes only theirs); `answers`:
    also the answer path's passages of the tune questions (unanswerable ones too) written
    there and the offline answers over them counted (replay), with the settings as set."""
    import fnmatch
    import itertools

    from django.test import override_settings

    from documents.models import Document

    every = sorted(p for p in docs.rglob("*") if p.suffix in MIME) if docs else library_files(dest)
    files = [p for p in every if p.suffix.lstrip(".") in formats]
    if only_docs:
        files = [p for p in files if any(fnmatch.fnmatch(p.name, g) for g in only_docs)]
    if not reuse:
        ingest(files, every)
    ready = Document.objects.filter(status=Document.Status.READY, name__in=[p.name for p in files])
    names = set(ready.values_list("name", flat=True))
    document_ids = list(ready.values_list("pk", flat=True))
    print(f"searching {len(names)} documents: {', '.join(sorted(names))}")
    tuned = [
        c
        for c in load_questions(questions)
        if (not c.answerable or c.doc in names)
        and c.split == "tune"
        and (not kinds or c.kind in kinds)
    ]
    cases = [c for c in tuned if c.answerable]
    if answers:
        dump_answers(tuned, answers)
        replay(answers, None)
    axes = []
    for item in grid:
        name, _, values = item.partition("=")
        axes.append([(name.strip(), _setting_value(v.strip())) for v in values.split(",")])
    kinds = sorted({c.kind for c in cases})
    print(f"{len(cases)} tune questions; hit@5 (hit@1, MRR@10), then hit@5 by kind")
    print(f"{'settings':<48}{'all':>20}" + "".join(f"{k[:10]:>11}" for k in kinds))
    for combo in itertools.product(*axes):
        with override_settings(**dict(combo)):
            groups = rank_rra(cases, mode, document_ids).finished()
        label = " ".join(f"{n.removeprefix('SEARCH_')}={v}" for n, v in combo) or "(as set)"
        row = f"{label:<48}{_cell(groups['all']):>20}"
        row += "".join(f"{groups[f'all/{k}'].hit_at_5:>11.2f}" for k in kinds)
        print(row, flush=True)


# ===================================================================== answers (tune)


def dump_answers(cases: list, path: Path) -> None:
    """The passages the answer path keeps for each case (retrieve(): search, guard and
    neighbouring chunks, on every ready document as a chat does) written to `path` as
    JSON, so that the offline answerer can be changed and run again over the same
    passages without the database (`replay`). Reads the index, never writes it."""
    from dataclasses import asdict

    from documents.evaluation import _retrieve
    from documents.models import EVERY_DOCUMENT

    rows = []
    for case in cases:
        passages, _ = _retrieve(user=EVERY_DOCUMENT, case=case)
        rows.append({"case": asdict(case), "passages": [asdict(p) for p in passages]})
    path.write_text(json.dumps(rows))
    print(f"wrote the passages of {len(rows)} tune questions to {path}")


def _missing_kind(case, passages: list, answer: str) -> str:
    """Why an answered question lacks a fact, when the answer's passages hold them: the
    line holding a missing fact was quoted but cut ("truncated"), or was not quoted
    ("not quoted"); "split" when no one passage holds every fact."""
    from documents.evaluation import _normalized, _passage_holds, answer_text

    body = _normalized(answer_text(answer))
    missing = [f for f in case.facts if _normalized(f) not in body]
    for fact in missing:
        for passage in passages:
            for line in passage.text.split("\n"):
                norm = _normalized(line)
                if _normalized(fact) in norm:
                    head = norm[: max(1, norm.find(_normalized(fact)))][:40]
                    if len(head) > 12 and head in body:
                        return "truncated"
    return "not quoted" if any(_passage_holds(p, case) for p in passages) else "split"


def replay(path: Path, show: str | None) -> None:
    """The offline answerer over the passages `dump_answers` wrote: unanswerable declined,
    every fact, and the misses by kind: no passage (declined by the guard), facts not in
    the answer's passages (not retrieved), declined by the answerer, and answered without
    a fact (truncated, not quoted, split over passages). `show`: print the answers of
    these outcomes (comma-separated: the kinds above, "ok", "all")."""
    from chats.answering.extractive import NOT_COVERED, extractive_answer
    from chats.answering.types import Passage, Turn
    from documents.evaluation import Case, _passage_holds, answer_text, holds_facts

    shown = {s.strip() for s in (show or "").split(",") if s.strip()}
    counts: dict[str, int] = {}
    words = []
    unanswerable = declined = answerable = 0
    for row in json.loads(path.read_text()):
        fields = dict(row["case"])
        for key in ("pages", "facts"):
            fields[key] = tuple(fields[key])
        fields["history"] = tuple(tuple(t) for t in fields["history"])
        case = Case(**fields)
        passages = [
            Passage(**{**p, "chunks": tuple(tuple(c) for c in p["chunks"])})
            for p in row["passages"]
        ]
        history = [Turn(role=r, content=c) for r, c in case.history]
        answer = (
            extractive_answer(case.question, passages, history=history) if passages else NOT_COVERED
        )
        if answer != NOT_COVERED:
            words.append(len(answer.split()))
        if not case.answerable:
            unanswerable += 1
            declined += answer == NOT_COVERED
            outcome = "declined" if answer == NOT_COVERED else "answered unanswerable"
        else:
            answerable += 1
            if not passages:
                outcome = "no passage"
            elif not any(_passage_holds(p, case) for p in passages) and not holds_facts(
                "\n".join(p.text for p in passages), case.facts
            ):
                outcome = "not retrieved"
            elif answer == NOT_COVERED:
                outcome = "declined by the answerer"
            elif holds_facts(answer_text(answer), case.facts):
                outcome = "ok"
            else:
                outcome = _missing_kind(case, passages, answer)
        counts[outcome] = counts.get(outcome, 0) + 1
        if "all" in shown or outcome in shown:
            print(f"\n=== [{outcome}] line {case.line} ({case.kind}): {case.question}")
            if case.history:
                print(f"    after: {case.history[0][1]}")
            print(f"    facts: {list(case.facts)}  doc: {case.doc} {case.pages} {case.section}")
            for p in passages:
                print(f"    [{p.number}] {p.document} {p.pages} {p.section} score={p.score:.3f}")
            print(answer)
    words.sort()
    print(
        f"\nanswerable {answerable}: every fact {counts.get('ok', 0)}; "
        f"unanswerable declined offline {declined}/{unanswerable}; words (median / p90) "
        + (f"{words[len(words) // 2]} / {words[int(len(words) * 0.9)]}" if words else "-")
    )
    for outcome, n in sorted(counts.items(), key=lambda item: -item[1]):
        print(f"  {outcome:<28}{n:>5}")


# ===================================================================== main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="install and convert the manuals")
    p_build.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    p_check = sub.add_parser("check", help="each question's facts where it says they are")
    p_check.add_argument("questions", type=Path, nargs="+")
    p_check.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    p_eval = sub.add_parser("eval", help="RRA and the baselines on the library")
    p_eval.add_argument("questions", type=Path, nargs="+")
    p_eval.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    p_eval.add_argument("--only", choices=SYSTEMS, help="one system (default: all)")
    p_eval.add_argument("--json", type=Path, dest="json_out", help="also write the numbers here")
    p_eval.add_argument(
        "--formats",
        default="md,txt,pdf",
        help="a slice of the library: its documents of these formats and their questions",
    )
    p_eval.add_argument("--reuse", action="store_true", help="search the index as it is")
    p_eval.add_argument("--only-docs", action="append", help="only the files matching this")
    p_eval.add_argument("--cache", type=Path, help="folder of the baseline vectors (default DEST)")
    p_eval.add_argument(
        "--splits",
        help="only these splits' questions (e.g. tune: what a tuning run may read)",
    )
    p_tune = sub.add_parser("tune", help="RRA's search on the tune split per setting")
    p_tune.add_argument("questions", type=Path, nargs="+")
    p_tune.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    p_tune.add_argument("--formats", default="md,txt,pdf")
    p_tune.add_argument("--mode", default="hybrid", choices=list(RRA_MODES.values()))
    p_tune.add_argument("--docs", type=Path, help="these files instead of the library's")
    p_tune.add_argument("--reuse", action="store_true", help="search the index as it is")
    p_tune.add_argument(
        "--only-docs", action="append", help="only the files matching this pattern (repeatable)"
    )
    p_tune.add_argument(
        "--set",
        action="append",
        default=[],
        dest="grid",
        metavar="NAME=V1,V2",
        help="a setting and its values to try (repeatable: every combination)",
    )
    p_tune.add_argument("--kinds", help="only the questions of these kinds (e.g. dutch,german)")
    p_tune.add_argument(
        "--answers",
        type=Path,
        help="also write the answer path's passages of the tune questions here and count the"
        " offline answers over them (see replay)",
    )
    p_replay = sub.add_parser(
        "replay", help="the offline answerer over passages that tune --answers wrote"
    )
    p_replay.add_argument("passages", type=Path)
    p_replay.add_argument(
        "--show", help="print these outcomes' answers (e.g. 'not quoted,truncated', 'all')"
    )
    args = parser.parse_args()
    if args.command == "build":
        build(args.dest.resolve())
    elif args.command == "check":
        django_setup()
        sys.exit(check(args.dest.resolve(), args.questions))
    elif args.command == "tune":
        django_setup()
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        tune(
            args.dest.resolve(),
            args.questions,
            formats,
            args.grid,
            args.mode,
            args.docs,
            args.reuse,
            args.only_docs,
            [k.strip() for k in (args.kinds or "").split(",") if k.strip()],
            args.answers,
        )
    elif args.command == "replay":
        django_setup()
        replay(args.passages, args.show)
    elif args.command == "eval":
        django_setup()
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        splits = [s.strip() for s in (args.splits or "").split(",") if s.strip()]
        evaluate_library(
            args.dest.resolve(),
            args.questions,
            args.only,
            formats,
            args.json_out,
            splits,
            args.reuse,
            args.only_docs,
            args.cache,
        )


if __name__ == "__main__":
    main()
