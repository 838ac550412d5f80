"""Structure- and page-aware chunking: an Extraction becomes ChunkDrafts.

- A heading starts a new chunk and stays with the text under it (consecutive headings,
  e.g. a chapter title straight followed by a section title, travel together).
- Consecutive blocks of one section are packed into a chunk while they fit in
  target_tokens; a block that does not fit starts the next chunk, and a block longer
  than target_tokens is split at sentence boundaries (a sentence longer than that at
  whitespace). Chunks may span pages.
- ``content`` is the section path (headings joined with SECTION_SEPARATOR) as a first line of
  context, then the chunk text (blocks separated by a line break), so that the embedding
  sees the heading. The section line counts against target_tokens.
- Overlap: a chunk repeats the last ~overlap_tokens worth of whole sentences of the chunk
  before it when both belong to the same section.
- ``start`` is an offset in first_page's Page.text and ``end`` one in last_page's, so the
  page texts sliced between them hold the chunk text (exact when Block.text is the page
  slice; otherwise mapped through whitespace differences, or proportionally).

Tokens are counted once per sentence (cached by text) and summed; only the final content
of each chunk is counted again for ``token_count``. With a whitespace/punctuation
pre-tokenizer (WordPiece, as the local model uses) the sums are exact, so no chunk's
content exceeds target_tokens unless a single heading run or word does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from documents.types import INVISIBLE_MARKS, Block, ChunkDraft, Extraction, Page

SECTION_SEPARATOR = " › "
TITLE_MAX_CHARS = 120
_NAME_SEPARATORS = re.compile(r"[_\s]+")
_TITLE_WORDS = re.compile(r"\w+")


def document_title(name: str, metadata: dict | None = None, *, heading: str = "") -> str:
    """What a document is called, for indexing beside each chunk: its file name without
    the extension ("FAQ_RoboRail_Calibration_v0.0.pdf" -> "FAQ RoboRail Calibration
    v0.0"), then the title its metadata gives (PDF/DOCX properties, a Markdown file's
    first heading) when that says more than the name and than `heading` (the first
    chunk's section path, which every chunk of the section already starts with)."""
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    title = " ".join(_NAME_SEPARATORS.sub(" ", stem).split())
    given = " ".join(str((metadata or {}).get("title") or "").split())
    if given and not set(_TITLE_WORDS.findall(given.lower())) <= set(
        _TITLE_WORDS.findall(f"{title} {heading}".lower())
    ):
        title = f"{title} — {given}" if title else given
    if len(title) > TITLE_MAX_CHARS:
        title = title[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] + "…"
    return title


def index_text(title: str, content: str) -> str:
    """What the embedding of a chunk is computed from: the document's title, then the
    content (which starts with the section path), so the vector leg sees "Title ›
    Section › Subsection" as the text leg does (Chunk.search_vector)."""
    return f"{title}{SECTION_SEPARATOR}{content}" if title else content


# A sentence ends at . ! ? or … (then closing quotes or brackets) before whitespace, or
# at a line break. _is_sentence_end() throws out abbreviations and list numbers.
# A match starts only where a run of marks starts, and never gives characters back:
# linear time (a block of 2,000 dots took 64 ms with backtracking; 10 MB of them, the
# text limit, would have held the worker for minutes).
_BREAK = re.compile(r"(?<![.!?…])[.!?…]++[\"'”’»)\]]*+(?=\s)|\n")
_LAST_WORD = re.compile(r"(\S+)$")
# Words that end with a period without ending the sentence (compared in lower case).
_ABBREVIATION_WORDS = """
    e.g i.e cf vs approx ca fig figs no nos nr ref refs sec sect ch chap eq eqs pp vol
    art para tab incl excl resp mr mrs ms dr jr inc ltd corp dept rev ver al qty
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_WORD = re.compile(r"\S+")


@dataclass(slots=True)
class _Piece:
    """A sentence (or a part of one, or a whole heading) of a block."""

    block: int  # index into the non-empty blocks
    start: int  # offsets in that block's text
    end: int
    tokens: int
    heading: bool = False


@dataclass
class _Run:
    """The blocks of one section: leading heading(s), then body blocks."""

    path: tuple[str, ...]
    headings: list[_Piece] = field(default_factory=list)
    body: list[list[_Piece]] = field(default_factory=list)  # one list of pieces per block
    body_path: tuple[str, ...] | None = None


def chunk_extraction(
    extraction: Extraction,
    *,
    target_tokens: int,
    overlap_tokens: int,
    count_tokens: Callable[[str], int],
) -> list[ChunkDraft]:
    """Split an extraction into chunks of at most about target_tokens tokens."""
    if target_tokens < 1:
        raise ValueError("target_tokens must be at least 1")
    overlap_tokens = max(0, min(overlap_tokens, target_tokens // 2))
    counter = _Counter(count_tokens)
    blocks = [block for block in extraction.blocks if block.text.strip()]
    pages = {page.number: page for page in extraction.pages}

    drafts: list[ChunkDraft] = []
    for run in _section_runs(blocks, counter):
        section = SECTION_SEPARATOR.join(run.path)
        header_tokens = counter(section) if section else 0
        budget = max(target_tokens - header_tokens, target_tokens // 2, 1)
        packer = _Packer(blocks, counter, budget, overlap_tokens)
        for pieces in packer.pack(run):
            drafts.append(_draft(len(drafts), pieces, blocks, pages, section, count_tokens))
    return drafts


class _Counter:
    """count_tokens with a cache: repeated sentences (labels, table cells) count once."""

    def __init__(self, count_tokens: Callable[[str], int]) -> None:
        self.count_tokens = count_tokens
        self.cache: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        tokens = self.cache.get(text)
        if tokens is None:
            tokens = self.cache[text] = self.count_tokens(text)
        return tokens


# --- Sections ------------------------------------------------------------------------


def _clean(text: str) -> str:
    return " ".join(text.split())


def _path(block: Block) -> tuple[str, ...]:
    path = [_clean(h) for h in block.headings if h.strip()]
    if block.kind == "heading":
        title = _clean(block.text)
        if not path or path[-1] != title:  # headings may or may not include the block
            path.append(title)
    return tuple(path)


def _section_runs(blocks: list[Block], counter: _Counter) -> list[_Run]:
    runs: list[_Run] = []
    run: _Run | None = None
    for index, block in enumerate(blocks):
        path = _path(block)
        if block.kind == "heading":
            text = block.text
            start = len(text) - len(text.lstrip())
            end = len(text.rstrip())
            piece = _Piece(index, start, end, counter(text[start:end]), heading=True)
            if run is None or run.body:
                run = _Run(path)
                runs.append(run)
            run.headings.append(piece)
            run.path = path
            continue
        if run is None or (run.body and path != run.body_path):
            run = _Run(path)
            runs.append(run)
        if run.body_path is None:
            run.body_path = path
        run.body.append(
            [
                _Piece(index, start, end, counter(block.text[start:end]))
                for start, end in sentence_spans(block.text)
            ]
        )
    return runs


# --- Sentences -----------------------------------------------------------------------


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of text, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BREAK.finditer(text):
        if match.group() == "\n":
            end = match.start()
        elif _is_sentence_end(text, match.start(), match.end()):
            end = match.end()
        else:
            continue
        _add_span(spans, text, start, end)
        start = match.end()
    _add_span(spans, text, start, len(text))
    return spans


def _add_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def _is_sentence_end(text: str, mark: int, after: int) -> bool:
    rest = text[after : after + 3].lstrip()
    if rest[:1].islower():  # "approx. five", "e.g. the"
        return False
    if text[mark] != ".":
        return True
    word = _LAST_WORD.search(text, max(0, mark - 24), mark)
    if word is None:
        return True
    token = word.group(1).lstrip("([\"'“‘").lower()
    if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
        return False
    # "1." or "a)"-style numbering at the start of a line is not a sentence.
    line_start = text.rfind("\n", 0, word.start()) + 1
    return not (token.isdigit() and not text[line_start : word.start()].strip())


# --- Packing -------------------------------------------------------------------------


class _Packer:
    """Greedy packing of one section's pieces into chunks of at most budget tokens."""

    def __init__(
        self, blocks: list[Block], counter: _Counter, budget: int, overlap_tokens: int
    ) -> None:
        self.blocks = blocks
        self.counter = counter
        self.budget = budget
        self.overlap_tokens = overlap_tokens
        self.chunks: list[list[_Piece]] = []
        self.current: list[_Piece] = []
        self.tokens = 0
        self.fresh = 0  # body pieces in current that are not repeated from the last chunk

    def pack(self, run: _Run) -> list[list[_Piece]]:
        for piece in run.headings:
            self._add(piece, fresh=False)
        for pieces in run.body:
            block_tokens = sum(piece.tokens for piece in pieces)
            if self.tokens + block_tokens <= self.budget:
                for piece in pieces:
                    self._add(piece)
            elif block_tokens <= self.budget and self.fresh:
                self._flush(room_for=block_tokens)
                for piece in pieces:
                    self._add(piece)
            else:
                for piece in pieces:
                    self._add_sentence(piece)
        # (A run of headings with no text after them at all still makes a chunk.)
        if self.fresh or any(piece.heading for piece in self.current):
            self.chunks.append(self.current)
        return self.chunks

    def _add(self, piece: _Piece, *, fresh: bool = True) -> None:
        self.current.append(piece)
        self.tokens += piece.tokens
        if fresh:
            self.fresh += 1

    def _add_sentence(self, piece: _Piece) -> None:
        if self.tokens + piece.tokens <= self.budget:
            self._add(piece)
            return
        if piece.tokens <= self.budget and self.fresh:
            self._flush(room_for=piece.tokens)
            self._add(piece)
            return
        # Longer than the room left after the heading, or than a whole chunk: split it.
        if self.fresh and self.budget - self.tokens < self.budget // 4:
            self._flush(room_for=self.budget // 2)
        room = self.budget - self.tokens
        if room <= 0:  # the headings alone fill a chunk
            self._flush(room_for=None)
            room = self.budget
        for part in self._split(piece, room):
            if self.tokens + part.tokens > self.budget and self.fresh:
                self._flush(room_for=part.tokens)
            self._add(part)

    def _flush(self, *, room_for: int | None) -> None:
        """Close the current chunk; start the next with the overlap that leaves room_for."""
        previous = self.current
        self.chunks.append(previous)
        self.current, self.tokens, self.fresh = [], 0, 0
        if not self.overlap_tokens or room_for is None:
            return
        overlap: list[_Piece] = []
        total = 0
        # Whole sentences from the end; never a heading, and never all of the text of
        # the chunk before.
        body = [piece for piece in previous if not piece.heading]
        for piece in reversed(body[1:]):
            if total + piece.tokens > self.overlap_tokens:
                break
            overlap.insert(0, piece)
            total += piece.tokens
        while overlap and total + room_for > self.budget:
            total -= overlap.pop(0).tokens
        for piece in overlap:
            self._add(piece, fresh=False)

    def _split(self, piece: _Piece, first_room: int) -> list[_Piece]:
        """Parts of piece at whitespace: the first fits first_room, the others budget."""
        text = self.blocks[piece.block].text
        parts: list[_Piece] = []
        room = first_room
        start = end = -1
        tokens = 0
        for word_start, word_end, word_tokens in self._words(piece, text):
            if tokens and tokens + word_tokens > room:
                parts.append(_Piece(piece.block, start, end, tokens))
                tokens, room = 0, self.budget
            elif not tokens and word_tokens > room:
                room = self.budget  # not even one word fits the first room
            if not tokens:
                start = word_start
            end = word_end
            tokens += word_tokens
        if tokens:
            parts.append(_Piece(piece.block, start, end, tokens))
        return parts

    def _words(self, piece: _Piece, text: str):
        """(start, end, tokens) of each word; a word longer than budget is cut in parts."""
        for match in _WORD.finditer(text, piece.start, piece.end):
            word = match.group()
            tokens = self.counter(word)
            if tokens <= self.budget:
                yield match.start(), match.end(), tokens
                continue
            parts = math.ceil(tokens / self.budget)
            size = math.ceil(len(word) / parts)
            for offset in range(0, len(word), size):
                part = word[offset : offset + size]
                begin = match.start() + offset
                yield begin, begin + len(part), self.counter(part)


# --- Drafts ---------------------------------------------------------------------------


def _draft(
    index: int,
    pieces: list[_Piece],
    blocks: list[Block],
    pages: dict[int, Page],
    section: str,
    count_tokens: Callable[[str], int],
) -> ChunkDraft:
    texts: list[str] = []
    group_block, group_start, group_end = pieces[0].block, pieces[0].start, pieces[0].end
    for piece in pieces[1:]:
        if piece.block == group_block and piece.start >= group_end:
            group_end = piece.end
            continue
        texts.append(blocks[group_block].text[group_start:group_end])
        group_block, group_start, group_end = piece.block, piece.start, piece.end
    texts.append(blocks[group_block].text[group_start:group_end])
    body = "\n".join(texts)
    content = f"{section}\n{body}" if section else body
    first, last = pieces[0], pieces[-1]
    first_block, last_block = blocks[first.block], blocks[last.block]
    return ChunkDraft(
        index=index,
        content=content,
        first_page=first_block.page,
        last_page=last_block.page,
        section=section,
        token_count=count_tokens(content),
        start=_page_offset(first_block, first.start, pages, is_start=True),
        end=_page_offset(last_block, last.end, pages, is_start=False),
    )


def _page_offset(block: Block, offset: int, pages: dict[int, Page], *, is_start: bool) -> int:
    """The offset in the block's page text of offset in block.text."""
    if offset <= 0:
        return block.start
    if offset >= len(block.text):
        return block.end
    page = pages.get(block.page)
    if page is None:
        return block.start + offset
    source = page.text[block.start : block.end]
    if source == block.text:
        return block.start + offset
    mapped = _map_through_whitespace(block.text, source, offset, is_start=is_start)
    if mapped is not None:
        return block.start + mapped
    # The extractor changed more than whitespace: estimate proportionally.
    span = block.end - block.start
    return block.start + min(span, round(offset * span / len(block.text)))


def _map_through_whitespace(text: str, source: str, offset: int, *, is_start: bool) -> int | None:
    """Where text[offset] is in source, if the two differ only in whitespace (and the
    marks that block text leaves out, INVISIBLE_MARKS)."""
    i = j = 0
    while i < offset:
        if text[i].isspace():
            i += 1
            continue
        while j < len(source) and (source[j].isspace() or source[j] in INVISIBLE_MARKS):
            j += 1
        if j >= len(source) or source[j] != text[i]:
            return None
        i += 1
        j += 1
    if is_start:
        while j < len(source) and source[j].isspace():
            j += 1
    return j
