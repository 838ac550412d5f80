"""Answer Markdown -> safe HTML, with [n] citations as buttons.

markdown-it-py with raw HTML disabled escapes everything the model writes, so the output
is safe to insert as HTML. Links and images are off too (inline links, images,
<autolinks> and reference definitions stay the text they were written as): an answer
quotes documents that other users may have written, and a shared manual must not put a
live "[official firmware](https://evil.example/fw.exe)" or a tracking image into someone
else's answer, whether the offline answerer quoted it or a model repeated it.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline

_CITE = re.compile(r"\[(\d{1,3})\]")


def _citation_rule(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "[":
        return False
    match = _CITE.match(state.src, state.pos)
    if not match or int(match.group(1)) == 0:
        return False
    if not silent:
        token = state.push("citation", "", 0)
        token.meta = {"number": int(match.group(1))}
    state.pos = match.end()
    return True


def _render_citation(self, tokens, idx, options, env) -> str:
    n = tokens[idx].meta["number"]
    return (
        f'<button type="button" class="cite" data-cite="{n}" '
        f'aria-label="Source {n}" aria-haspopup="dialog">{n}</button>'
    )


_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable("table")
    .enable("strikethrough")
    .disable(["link", "image", "autolink", "reference"])
)
_md.inline.ruler.before("link", "citation", _citation_rule)
_md.add_render_rule("citation", _render_citation)


def render_answer(markdown: str) -> str:
    return _md.render(markdown or "")
