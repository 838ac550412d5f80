from django import template
from django.utils.safestring import mark_safe

from chats.rendering import render_answer
from documents.chunking import SECTION_SEPARATOR

register = template.Library()


@register.filter
def answer_html(markdown: str) -> str:
    """Sanitized HTML of an answer (markdown-it with raw HTML disabled)."""
    return mark_safe(render_answer(markdown))  # noqa: S308 - escaped by construction


@register.filter
def get_item(mapping: dict | None, key):
    """mapping[key], or None (the chat page's votes of the reader by message id)."""
    return (mapping or {}).get(key)


@register.filter
def passage_text(quote: str, section: str = "") -> str:
    """A cited passage as the Sources list shows it: without its section path, which
    the chunk's content starts with (for the embedding), nor the headings its text
    starts with ("Maintenance manual Maintenance manual This manual ..." before); the
    list names the place (location) already. The quote as it is when nothing is left."""
    lines = quote.split("\n")
    if section and lines and lines[0].strip() == section.strip():
        lines = lines[1:]
    headings = {h.strip() for h in section.split(SECTION_SEPARATOR) if h.strip()}
    while lines and lines[0].strip() in headings:
        lines = lines[1:]
    text = "\n".join(lines).strip()
    return text or quote
