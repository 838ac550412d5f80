from django import template
from django.utils.safestring import mark_safe

from chats.rendering import render_answer

register = template.Library()


@register.filter
def answer_html(markdown: str) -> str:
    """Sanitized HTML of an answer (markdown-it with raw HTML disabled)."""
    return mark_safe(render_answer(markdown))  # noqa: S308 - escaped by construction


@register.filter
def get_item(mapping: dict | None, key):
    """mapping[key], or None (the chat page's votes of the reader by message id)."""
    return (mapping or {}).get(key)
