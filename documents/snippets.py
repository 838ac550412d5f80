"""A search hit's snippet: PostgreSQL's ts_headline of the passage, marked and escaped,
without the headings its text starts with (the hit names its section apart)."""

from __future__ import annotations

import html

from documents.chunking import SECTION_SEPARATOR

# ts_headline does not escape the text: mark with control characters, escape, then
# turn the marks into <mark> tags (see snippet_html).
_START, _STOP = "\x02", "\x03"
SNIPPET_OPTIONS = (
    f"StartSel={_START}, StopSel={_STOP}, MaxWords=35, MinWords=15, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)


# The snippet's text: the chunk's content without its first line, the section path
# (chunking.py puts it there for the embedding and the text leg), which the hit names
# apart (location) and whose headings the text itself starts with; a snippet showed
# "Manual › Calibration Manual Calibration Put a ..." (without_headings drops the
# headings at the start of the text).
SNIPPET_TEXT = (
    "CASE WHEN c.section <> '' AND starts_with(c.content, c.section || chr(10))"
    " THEN substr(c.content, char_length(c.section) + 2) ELSE c.content END"
)


def _strip_line(raw: str, line: str) -> str | None:
    """raw without a first line equal to `line` (the snippet's marks skipped while
    comparing), or None when it does not start with it."""
    i = 0
    for char in f"{line}\n":
        while i < len(raw) and raw[i] in (_START, _STOP):
            i += 1
        if i >= len(raw) or raw[i] != char:
            return None
        i += 1
    while i < len(raw) and raw[i] == _STOP:
        i += 1
    return raw[i:]


def without_headings(raw: str, section: str) -> str:
    """The snippet without the headings of its section that the chunk's text starts
    with (the hit names its section apart)."""
    headings = {h.strip() for h in section.split(SECTION_SEPARATOR) if h.strip()}
    rest = raw
    while True:
        for heading in headings:
            shorter = _strip_line(rest.lstrip(" "), heading)
            if shorter is not None:
                rest = shorter
                break
        else:
            break
    return rest if rest.replace(_START, "").replace(_STOP, "").strip() else raw


def snippet_html(raw: str) -> str:
    return (
        html.escape(
            raw.replace(_START, "").replace(_STOP, "")
            if raw.count(_START) != raw.count(_STOP)
            else raw
        )
        .replace(_START, "<mark>")
        .replace(_STOP, "</mark>")
    )
