"""The line-level reading the offline answerer and its units share
(chats/answering/extractive.py, units.py): a passage's line cleaned of glyphs, a heading or
title told from a sentence, a command told from prose, and a quote made plain (links and
images as text, a document's own "[4]" escaped, long sentences cut)."""

from __future__ import annotations

import re

from documents.chunking import SECTION_SEPARATOR

MAX_SENTENCE_WORDS = 60  # longer sentences are quoted up to here, then "…"


_GLYPH = "[\ue000-\uf8ff]"
_PRIVATE_USE = re.compile(_GLYPH)
_GLYPH_IN_BRACKETS = re.compile(rf"\s*\(\s*{_GLYPH}+\s*\)")  # "button (<glyph>)"


_NUMBERED_TITLE = re.compile(r"^(?:§\s*)?\d+(?:\.\d+)*\.?\s+\S")
_HEADING_MAX_WORDS = 10


# "5.3 How can add-on packages be used?": an FAQ's question, numbered as a section.
_NUMBERED_QUESTION = re.compile(r"^\d+(?:\.\d+)+\.?\s+[A-Z][^?]*\?$")


def _is_heading(line: str, section: str) -> bool:
    """A heading repeated in the text (one of its section path's headings, a short
    numbered title without a sentence's end, or an FAQ's numbered question): never an
    answer on its own."""
    if any(line == part.strip() for part in section.split(SECTION_SEPARATOR.strip())):
        return True
    if len(line.split()) > _HEADING_MAX_WORDS:
        return False
    return bool(_NUMBERED_QUESTION.match(line.strip())) or (
        bool(_NUMBERED_TITLE.match(line)) and not line.rstrip().endswith((".", ":", "?", "!", ")"))
    )


_BRACKETED_NUMBERS = re.compile(r"\[([\d,\s]*\d[\d,\s]*)\]")


# Markdown images and links of a document are quoted as their text (the answer renderer
# keeps any left inert anyway: chats.rendering).
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\(((?:[^()\s]|\([^()\s]*\))*)(?:\s+\"[^\"]*\")?\)")


def plain(sentence: str) -> str:
    """A quoted line as plain text: "![logo](x.png)" -> "logo", "[firmware](https://…)"
    -> "firmware (https://…)" (shown, never a link: the reader sees where it points)."""
    sentence = _MD_IMAGE.sub(r"\1", sentence)
    return _MD_LINK.sub(lambda m: f"{m[1]} ({m[2]})" if m[2] else m[1], sentence)


def _quoted(sentence: str, limit: int = MAX_SENTENCE_WORDS, *, block: bool = True) -> str:
    """A sentence quoted as plain text in Markdown, cut at `limit` words; `block`: it
    opens a block (a bullet's or a paragraph's text), where a leading "1." or "#" is
    escaped too."""
    sentence = plain(sentence)
    words = sentence.split(" ")
    if len(words) > limit:
        sentence = " ".join(words[:limit]) + " …"
    # A "[4]" of the document itself must not read as a citation: escaped for Markdown,
    # it still shows as [4].
    sentence = _BRACKETED_NUMBERS.sub(r"\\[\1\\]", sentence)
    # A quote is text: its own "1. Encoding ...", "# comment" or "> prompt" at the start
    # would make a list, a heading or a block quote of it inside the answer's bullet.
    if not block:
        return sentence
    sentence = _ORDERED_START.sub(r"\1\\\2", sentence)
    return _BLOCK_START.sub(r"\\", sentence)


_ORDERED_START = re.compile(r"^(\d{1,9})([.)])(?=\s)")
_BLOCK_START = re.compile(r"^(?=#{1,6}(?:\s|$)|>|[-+*]\s)")


# A line that introduces what follows it: "If the laser value increases:", "... create a
# training user account by the following." (then the commands).
_INTRODUCES = re.compile(
    r"(?::|\b(?:following|follows|below)\s*[.:]?|\b(?:is|are|as|with|like|run|type|enter))$",
    re.IGNORECASE,
)  # "... by the following.", "The general command form to restore a text dump is"


# A line that is a step: "1." / "2)" / "a)" / "Step 3:" / a bullet.
_STEP = re.compile(
    r"^\s*(?:\d{1,2}[.)]|[a-z][.)]|step\s+\d+[:.)]?|[-*+•▪●◦‣])\s+(?=\S)", re.IGNORECASE
)


def _clean_line(line: str) -> str:
    line = _GLYPH_IN_BRACKETS.sub("", line)
    line = " ".join(_PRIVATE_USE.sub(" ", line).split())
    return line.replace("( ", "(").replace(" )", ")")


_TITLE_END = (".", ":", ";", ",", "!", "?", ")")
_TITLE_MAX_WORDS = 6


def _is_title(line: str) -> bool:
    """A short line without a sentence's end that is not a step: a heading the
    extractor did not mark ("Send to HGG"), which ends a procedure."""
    return (
        not _STEP.match(line)
        and len(line.split()) <= _TITLE_MAX_WORDS
        and not line.endswith(_TITLE_END)
        and ":" not in line  # "Necessary tool: Spirit level"
        and line[:1].isupper()
    )


_PROSE = re.compile(r"^[\"'“(]?[A-Z][a-z]\S*\s.*[.!?:;)\"”]$")
_ELLIPSIS = re.compile(r"^(?:\.{3}|…)$")  # "..." for a command's output


_LOG_LINE = re.compile(r"^[A-Z][A-Z_]+:\s")  # "LOG: ...", "HINT: ...": output, not input


def _is_command(line: str) -> bool:
    return (
        not _STEP.match(line)
        and not _PROSE.match(line)
        and not _is_title(line)
        and not _LOG_LINE.match(line)
    )


MAX_COMMAND_WORDS = 12


def _looks_like_command(line: str) -> bool:
    """A short line that is no sentence and starts in lower case or with a symbol:
    "poweroff -i -f", "$ sudo adduser fish", "alias la='ls -la'"."""
    return len(line.split()) <= MAX_COMMAND_WORDS and not line[:1].isupper() and _is_command(line)


_INTRODUCES_END = re.compile(r"\s*[.:]?$")


def _code(command: str) -> str:
    """A command as inline code (a fence longer than any run of backticks in it)."""
    longest = max((len(run) for run in re.findall(r"`+", command)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if command.startswith("`") or command.endswith("`") else ""
    return f"{fence}{pad}{command}{pad}{fence}"


# Hard-wrapped text (Info manuals, plain-text files filled at 72 columns): every line of
# a paragraph is a fragment of its sentences. A passage is wrapped when no line is longer
# than WRAP_MAX_COLUMNS and WRAP_MIN_LINES lines fill WRAP_FULL columns or more and break
# off mid-sentence.
WRAP_MAX_COLUMNS = 80
WRAP_FULL = 55
WRAP_MIN_LINES = 4
_WRAP_ENDS = (".", "!", "?", ":")  # a line ending its sentence is not continued


def unwrapped(text: str) -> str:
    """A hard-wrapped passage's sentences on one line each: a full line (WRAP_FULL
    columns or more) that does not end its sentence (nor with ":") goes on with the next
    unless that one starts a list item or step. Text that is not wrapped (Markdown, PDF paragraphs) is returned
    as it is."""
    lines = text.split("\n")
    body = [line for line in lines if SECTION_SEPARATOR not in line]  # not the heading path
    if max((len(line) for line in body), default=0) > WRAP_MAX_COLUMNS:
        return text
    if sum(_runs_on(line) for line in body) < WRAP_MIN_LINES:
        return text
    out: list[str] = []
    joining = False
    for line in lines:
        if joining and line.strip() and not _STEP.match(line):
            out[-1] = f"{out[-1].rstrip()} {line.strip()}"
        else:
            out.append(line)
        joining = _runs_on(line)
    return "\n".join(out)


def _runs_on(line: str) -> bool:
    """A full line that breaks off mid-sentence."""
    return len(line.rstrip()) >= WRAP_FULL and not line.rstrip().endswith(_WRAP_ENDS)
