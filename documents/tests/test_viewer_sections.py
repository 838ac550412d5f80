"""The viewer for documents without pages: a cited Markdown, DOCX or plain-text section
rendered as HTML (headings, lists, tables, emphasis, code) with the passage marked,
safely (no raw HTML, no live links, no images), and prev/next through the sections."""

from __future__ import annotations

import re

import pytest

from documents import sections
from documents.models import Document, DocumentContent
from documents.services import document_ingest
from documents.tests import files
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db

MANUAL = b"""# Debian reference

Read the [release notes](https://www.debian.org/releases/) first.

## Package management

Use **apt** to install packages; `apt update` reads the package lists.

- apt install installs a package
- apt remove removes it

## Proxy server for APT

To fetch packages through an HTTP proxy, put the line below into
/etc/apt/apt.conf.d/proxy and run *apt update* again:

```
Acquire::http::Proxy "http://proxy.example:3128/";
```

| Setting | Meaning |
|---------|---------|
| Acquire::http::Proxy | proxy for http URLs |

Do not click [this](javascript:alert(1)) or ![tracker](https://evil.example/t.png).
<script>alert("document")</script>

## Network setup

The hostname is read from /etc/hostname at boot.
"""

TEXT = b"""Lathe operator's guide
======================

Read this guide before you switch the lathe on.

Spindle speed
-------------

Set the spindle speed with the blue gearbox lever.
The tachometer reads revolutions per minute.

Coolant
-------

Refill the coolant tank with a five percent emulsion every forty hours.
"""

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _ingest(owner, name: str, content: bytes, mime: str) -> Document:
    document = make_document(owner, name=name, content=content, mime_type=mime)
    assert document_ingest(document_id=document.pk) == "ready"
    document.refresh_from_db()
    return document


def _view(client, document: Document, **params) -> dict:
    response = client.get(f"/api/documents/{document.pk}/pages/1", params)
    assert response.status_code == 200, response.content
    return response.json()


def _marked(html: str) -> str:
    return " ".join(" ".join(re.findall(r"<mark>(.*?)</mark>", html, re.DOTALL)).split())


def _tags(html: str) -> set[str]:
    return set(re.findall(r"<([a-z0-9]+)[\s>]", html))


def test_a_cited_markdown_section_is_rendered_with_the_passage_marked(owner_client, owner, media):
    document = _ingest(owner, "debian.md", MANUAL, "text/markdown")
    chunk = document.chunks.get(content__contains="proxy.example")
    data = _view(owner_client, document, chunk=chunk.pk)
    html = data["html"]

    assert data["match"] == "chunk"
    assert data["section"] == "Debian reference › Proxy server for APT"
    assert (data["section_number"], data["section_count"]) == (3, 4)
    # The section only, with its own heading rendered as a heading (the cited chunk
    # starts with it, so it is marked too).
    assert "<h2><mark>Proxy server for APT</mark></h2>" in html
    assert "hostname" not in html and "apt remove" not in html
    # Emphasis, code and tables are rendered; no Markdown syntax is left.
    assert "<em><mark>apt update</mark></em>" in html
    assert '<pre><code><mark>Acquire::http::Proxy "http://proxy.example:3128/";' in (
        html.replace("&quot;", '"')
    )
    assert "<table>" in html and "<td><mark>proxy for http URLs</mark></td>" in html
    assert "**" not in html and "```" not in html and "|---" not in html
    # The passage is marked: the chunk's text, in one or more marks.
    assert "To fetch packages through an HTTP proxy" in _marked(html)
    # Nothing live: no links, no images, no document HTML.
    assert _tags(html) <= {"h2", "p", "em", "pre", "code", "table", "thead", "tbody", "tr",
                           "th", "td", "mark", "span"}  # fmt: skip
    assert "href" not in html and "javascript:" not in html.replace("(javascript:", "")
    assert "<img" not in html and "evil.example" not in html.replace("[tracker]", "")
    assert "<script" not in html
    assert '<span class="doc-image">' in html


def test_links_are_inert_and_keep_their_address_as_a_title(owner_client, owner, media):
    document = _ingest(owner, "debian.md", MANUAL, "text/markdown")
    data = _view(owner_client, document, section=1)
    assert data["section_number"] == 1 and data["passage"] is None
    assert "<h1>Debian reference</h1>" in data["html"]
    assert (
        '<span class="doc-link" title="https://www.debian.org/releases/">release notes</span>'
        in data["html"]
    )
    assert "<a " not in data["html"] and "<mark>" not in data["html"]


def test_prev_and_next_go_through_the_sections(owner_client, owner, media):
    document = _ingest(owner, "debian.md", MANUAL, "text/markdown")
    chunk = document.chunks.get(content__contains="proxy.example")
    titles = []
    for number in range(1, 5):
        data = _view(owner_client, document, chunk=chunk.pk, section=number)
        assert data["section_number"] == number and data["section_count"] == 4
        titles.append(data["section"].split(" › ")[-1])
        # Only the cited section carries the mark.
        assert ("<mark>" in data["html"]) is (number == 3)
    assert titles == ["Debian reference", "Package management", "Proxy server for APT",
                      "Network setup"]  # fmt: skip
    texts = [_view(owner_client, document, section=n)["text"] for n in range(1, 5)]
    page = DocumentContent.objects.get(document=document).pages[0]
    assert "".join(texts).strip() == page.strip()  # the sections cover the document

    missing = owner_client.get(f"/api/documents/{document.pk}/pages/1", {"section": 5})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "The document has no section 5."
    bad = owner_client.get(f"/api/documents/{document.pk}/pages/1", {"section": "two"})
    assert bad.status_code == 400 and "section" in bad.json()["error"]["fields"]


def test_a_replaced_chunk_is_found_by_its_quote(owner_client, owner, media):
    document = _ingest(owner, "debian.md", MANUAL, "text/markdown")
    quote = document.chunks.get(content__contains="boot").content
    data = _view(owner_client, document, quote=quote)
    assert data["match"] == "quote" and data["section_number"] == 4
    assert "The hostname is read from /etc/hostname at boot." in _marked(data["html"])


def test_a_docx_section_has_its_headings_lists_and_tables(owner_client, owner, media):
    content = files.docx_bytes(
        [
            ("title", "Press brake manual"),
            ("heading", 1, "Installation"),
            ("p", "Anchor the press brake with eight M16 bolts."),
            ("heading", 1, "Hydraulics"),
            ("heading", 2, "Oil change"),
            ("p", "Drain the hydraulic oil every 2000 hours."),
            ("bullet", "Use ISO VG 46 oil."),
            ("bullet", "Replace the filter <b>too</b>."),
            ("table", [["Tank", "Litres"], ["Main", "120"]]),
        ]
    )
    document = _ingest(owner, "press.docx", content, DOCX)
    assert DocumentContent.objects.get(document=document).blocks  # kept at ingestion
    chunk = document.chunks.get(content__contains="Drain the hydraulic oil")
    data = _view(owner_client, document, chunk=chunk.pk)
    html = data["html"]
    assert data["section"].endswith("Hydraulics › Oil change")
    assert "<h1><mark>Hydraulics</mark></h1>" in html
    assert "<h2><mark>Oil change</mark></h2>" in html
    assert "<ul>\n<li><mark>Use ISO VG 46 oil.</mark></li>" in html
    assert "<li><mark>Replace the filter &lt;b&gt;too&lt;/b&gt;.</mark></li>" in html
    assert "<td><mark>Main</mark></td><td><mark>120</mark></td>" in html
    assert "Drain the hydraulic oil every 2000 hours." in _marked(html)
    assert "M16" not in html


def test_a_plain_text_section_has_its_underlined_headings(owner_client, owner, media):
    document = _ingest(owner, "lathe.txt", TEXT, "text/plain")
    chunk = document.chunks.get(content__contains="coolant tank")
    data = _view(owner_client, document, chunk=chunk.pk)
    html = data["html"]
    assert data["section"] == "Lathe operator's guide › Coolant"
    assert data["section_count"] == 3 and data["section_number"] == 3
    assert "<h2><mark>Coolant</mark></h2>" in html and "-------" not in html
    assert "five percent emulsion every forty hours" in _marked(html)
    spindle = _view(owner_client, document, section=2)["html"]
    assert "<h2>Spindle speed</h2>" in spindle
    assert "lever.\nThe tachometer" in spindle  # its line breaks are kept


def test_documents_processed_before_blocks_were_kept_show_paragraphs(owner_client, owner, media):
    document = _ingest(owner, "lathe.txt", TEXT, "text/plain")
    DocumentContent.objects.filter(document=document).update(blocks=[])
    chunk = document.chunks.get(content__contains="coolant tank")
    html = _view(owner_client, document, chunk=chunk.pk)["html"]
    assert html.startswith("<p><mark>Coolant\n-------</mark></p>")
    assert "five percent emulsion every forty hours" in _marked(html)


# ============================================================== rendering


@pytest.mark.parametrize(
    ("source", "passage", "expected"),
    [
        # A passage that starts a list item, a table row or a heading keeps the line what it is.
        ("- one\n- two\n", "- two", "<li><mark>two</mark></li>"),
        ("| a | b |\n|---|---|\n| c | d |\n", "| c | d |", "<td><mark>c</mark></td>"),
        # Aligned columns get a class: the CSP allows no style attributes.
        ("| a | b |\n|:-:|--:|\n| c | d |\n", "c", '<td class="align-center"><mark>c</mark>'),
        ("## Setup\n\nText.\n", "## Setup", "<h2><mark>Setup</mark></h2>"),
        ("```\ncode line\n```\n", "```\ncode line\n```", "<code><mark>code line</mark>"),
        # A passage over two paragraphs is marked in each, never across their tags.
        ("One end.\n\nTwo start.\n", "end.\n\nTwo", "<p>One <mark>end.</mark></p>"),
    ],
)
def test_markdown_marks_keep_the_structure(source, passage, expected):
    start = source.index(passage)
    html = sections.render_markdown(source, (start, start + len(passage)))
    assert expected in html
    assert "\ue000" not in html and "\ue001" not in html and "style=" not in html


def test_sentinels_in_a_document_cannot_fake_a_mark():
    html = sections.render_markdown("a \ue000fake\ue001 b", None)
    assert "<mark>" not in html and "\ufffd" in html


def test_a_long_section_is_shown_around_the_passage(owner_client, owner, media):
    filler = "\n\n".join(
        f"Paragraph {n} describes the inspection of rail segment {n} in detail." for n in range(450)
    )
    source = f"# Rails\n\n## Inspection\n\n{filler}\n\nThe last segment needs a torque of 85 Nm.\n"
    document = _ingest(owner, "rails.md", source.encode(), "text/markdown")
    chunk = document.chunks.get(content__contains="85 Nm")
    data = _view(owner_client, document, chunk=chunk.pk)
    assert len(source) > 30_000 and len(data["text"]) <= 20_000
    assert data["truncated_before"] is True and data["truncated_after"] is False
    assert "torque of 85 Nm" in _marked(data["html"])
    assert "Paragraph 0 " not in data["text"]
    first = _view(owner_client, document, section=1)
    assert first["truncated_after"] is True and "<mark>" not in first["html"]
    assert "<h2>Inspection</h2>" in first["html"]
