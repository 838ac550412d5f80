"""Citations of documents without pages (Markdown, text, DOCX) name their section, not
"p. 1": in the answer's events, the saved citation, the chat page, the API and a shared
chat. PDFs keep their page numbers."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from chats.models import Chat, Citation, Message
from chats.tests.conftest import events
from documents.models import Document, location_label, section_label
from documents.services import document_ingest
from documents.tests import files
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db

APT_MD = b"""# Debian reference

## Package management

### Basic package management

Use apt to install, upgrade and remove packages. Run apt update before apt upgrade.

### Proxy server for APT

To fetch packages through an HTTP **proxy**, put the line
Acquire::http::Proxy "http://proxy.example:3128/"; into /etc/apt/apt.conf.d/proxy.

## Network setup

The hostname is read from /etc/hostname at boot; hostnamectl changes it.
"""

TEXT_MANUAL = b"""Lathe operator's guide
======================

Read this guide before you switch the lathe on.

Spindle speed
-------------

Set the spindle speed with the blue gearbox lever; the tachometer reads revolutions per
minute.

Coolant
-------

Refill the coolant tank with a five percent emulsion every forty hours of cutting.
"""

DOCX_CONTENT = [
    ("title", "Press brake manual"),
    ("heading", 1, "Installation"),
    ("p", "Anchor the press brake to the floor with eight M16 bolts."),
    ("heading", 1, "Hydraulics"),
    ("heading", 2, "Oil change"),
    ("p", "Drain the hydraulic oil every 2000 hours and refill with ISO VG 46 oil."),
]


def _ingest(owner, name: str, content: bytes, mime: str) -> Document:
    document = make_document(owner, name=name, content=content, mime_type=mime)
    assert document_ingest(document_id=document.pk) == "ready"
    document.refresh_from_db()
    return document


def _ask(client, chat: Chat, question: str) -> list[tuple[str, dict]]:
    response = client.post(
        f"/api/chats/{chat.pk}/messages", {"question": question}, content_type="application/json"
    )
    assert response.status_code == 200
    return events(response)


def _first_citation(stream) -> tuple[dict, Citation]:
    passages = stream[0][1]["passages"]
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    citation = message.citations.get(number=1)
    return passages[0], citation


def test_a_markdown_citation_names_its_section_everywhere(owner_client, owner, media, client):
    _ingest(owner, "debian-reference.md", APT_MD, "text/markdown")
    chat = Chat.objects.create(owner=owner)
    stream = _ask(owner_client, chat, "How do I make apt use a proxy server?")
    passage, citation = _first_citation(stream)

    expected = "§ Package management › Proxy server for APT"
    assert passage["section"] == "Debian reference › Package management › Proxy server for APT"
    assert passage["location"] == expected and passage["pages"] == ""
    assert citation.paged is False and citation.location == expected and citation.pages == ""

    page = owner_client.get(f"/c/{chat.pk}/").content.decode()
    assert f'<span class="src-pages">{expected}</span>' in page
    assert "p. 1" not in page

    api = owner_client.get(f"/api/chats/{chat.pk}").json()
    cited = next(m for m in api["messages"] if m["citations"])["citations"][0]
    assert cited["location"] == expected and cited["pages"] == ""

    # A shared (public) chat shows the same to someone without an account.
    Chat.objects.filter(pk=chat.pk).update(visibility=Chat.Visibility.PUBLIC)
    shared = client.get(f"/c/{chat.pk}/").content.decode()
    assert "debian-reference.md" in shared
    assert "Proxy server for APT" in shared and "p. 1" not in shared


def test_a_plain_text_citation_names_its_underlined_heading(owner_client, owner, media):
    _ingest(owner, "lathe.txt", TEXT_MANUAL, "text/plain")
    chat = Chat.objects.create(owner=owner)
    passage, citation = _first_citation(
        _ask(owner_client, chat, "How often is the coolant tank refilled?")
    )
    assert passage["location"] == "§ Lathe operator's guide › Coolant"
    assert citation.location == "§ Lathe operator's guide › Coolant"


def test_a_docx_citation_names_its_heading_path(owner_client, owner, media):
    content = files.docx_bytes(DOCX_CONTENT)
    _ingest(
        owner,
        "press-brake.docx",
        content,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    chat = Chat.objects.create(owner=owner)
    passage, citation = _first_citation(
        _ask(owner_client, chat, "How often is the hydraulic oil drained?")
    )
    assert passage["section"].endswith("Hydraulics › Oil change")
    assert passage["location"] == "§ Hydraulics › Oil change"
    assert citation.location == "§ Hydraulics › Oil change" and not citation.paged


def test_a_pdf_citation_keeps_its_page(owner_client, owner, media, tmp_path):
    path = files.make_pdf(
        tmp_path / "m.pdf",
        [["# Safety", "Wear gloves."], ["## Oil change", "Drain the gear oil every 900 hours."]],
    )
    _ingest(owner, "gearbox.pdf", path.read_bytes(), "application/pdf")
    chat = Chat.objects.create(owner=owner)
    passage, citation = _first_citation(
        _ask(owner_client, chat, "How often is the gear oil drained?")
    )
    assert passage["location"] == passage["pages"] == "p. 2"
    assert citation.paged is True and citation.location == "p. 2"


def test_search_api_gives_the_location(owner_client, owner, media):
    _ingest(owner, "debian-reference.md", APT_MD, "text/markdown")
    hits = owner_client.get("/api/search", {"q": "hostname at boot"}).json()["results"]
    assert hits[0]["location"] == "§ Debian reference › Network setup"
    assert hits[0]["pages"]["label"] == ""


def test_labels():
    assert section_label("") == ""
    assert section_label("Setup") == "§ Setup"
    assert section_label("Manual › Networking › Proxy") == "§ Networking › Proxy"
    assert location_label(3, 4, "Manual › Setup", paged=True) == "pp. 3–4"
    assert location_label(1, 1, "Manual › Setup", paged=False) == "§ Manual › Setup"
    assert location_label(1, 1, "", paged=False) == ""


def test_the_migration_moves_existing_citations_of_unpaged_documents(owner, media):
    markdown = _ingest(owner, "debian-reference.md", APT_MD, "text/markdown")
    chat = Chat.objects.create(owner=owner)
    message = Message.objects.create(chat=chat, role=Message.Role.ASSISTANT, content="x [1]")

    def cite(number, **fields):
        fields.setdefault("document_name", "x.md")
        return Citation.objects.create(
            message=message,
            first_page=1,
            last_page=1,
            section="A › B",
            quote="q",
            number=number,
            rank=number,
            score=1.0,
            **fields,
        )

    of_markdown = cite(1, document=markdown, document_name=markdown.name)
    of_deleted_text = cite(2, document_name="old notes.TXT")
    of_deleted_pdf = cite(3, document_name="old.pdf")
    migration = importlib.import_module("chats.migrations.0002_citation_paged")
    migration.mark_unpaged(apps, None)
    for c in (of_markdown, of_deleted_text, of_deleted_pdf):
        c.refresh_from_db()
    assert (of_markdown.paged, of_deleted_text.paged, of_deleted_pdf.paged) == (
        False,
        False,
        True,
    )
    assert of_markdown.location == "§ A › B" and of_deleted_pdf.location == "p. 1"
