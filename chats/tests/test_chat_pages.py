import re

import pytest
from django.test import Client

from chats.models import Chat, Citation, Message
from rra.testing import factories

pytestmark = pytest.mark.django_db


def _chat(owner, **fields):
    chat = Chat.objects.create(owner=owner, title="Levelling", **fields)
    Message.objects.create(chat=chat, role="user", content="How do I level <b>the</b> chuck?")
    answer = Message.objects.create(
        chat=chat, role="assistant", content="Use a **spirit level** [1]. <script>alert(1)</script>"
    )
    Citation.objects.create(
        message=answer,
        document=factories.document(owner, "roborail.md", visibility="shared"),
        document_name="roborail.md",
        first_page=2,
        last_page=2,
        quote="Put a spirit level on top.",
        number=1,
        rank=1,
        score=0.5,
    )
    return chat


def test_the_chat_page_renders_safe_markdown_with_citation_chips(owner_client, owner):
    chat = _chat(owner)
    response = owner_client.get(f"/c/{chat.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>spirit level</strong>" in page
    assert 'class="cite" data-cite="1"' in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "How do I level &lt;b&gt;the&lt;/b&gt; chuck?" in page
    assert 'data-number="1"' in page and "roborail.md" in page and "p. 2" in page
    assert 'id="composer"' in page and 'data-action="rename"' in page
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts and all(" src=" in tag for tag in scripts)  # no inline scripts


def test_a_public_chat_page_is_read_only_for_others(owner, outsider):
    chat = _chat(owner, visibility="public")
    anonymous = Client().get(f"/c/{chat.pk}/")
    assert anonymous.status_code == 200
    page = anonymous.content.decode()
    assert (
        "read-only" in page and 'id="composer"' not in page and 'data-action="rename"' not in page
    )


def test_a_private_chat_page_is_404_for_others(owner, outsider):
    chat = _chat(owner)
    client = Client()
    client.force_login(outsider)
    assert client.get(f"/c/{chat.pk}/").status_code == 404
    assert Client().get(f"/c/{chat.pk}/").status_code == 404


def test_the_sidebar_lists_my_chats(owner_client, owner, outsider):
    _chat(owner)
    Chat.objects.create(owner=outsider, title="Not mine")
    page = owner_client.get("/").content.decode()
    assert "Levelling" in page and "Not mine" not in page


def test_a_public_chat_never_shows_its_owners_email(owner):
    owner.name, owner.email = "", "olive.private@example.com"
    owner.save()
    chat = _chat(owner, visibility="public")
    page = Client().get(f"/c/{chat.pk}/").content.decode()
    assert "Shared by its owner" in page
    assert "olive.private" not in page


def test_links_and_images_in_an_answer_stay_inert_text():
    """Whatever an answer quotes or a model repeats from a shared document, nothing in it
    becomes a live link or image; citations still become buttons."""
    from chats.rendering import render_answer

    html = render_answer(
        "Get the [official firmware](https://evil.example/fw.exe) [1].\n\n"
        "![logo](https://tracker.example/p.png) <https://evil.example/x> [see][fw] [2]\n\n"
        "[fw]: https://evil.example/ref\n"
    )
    assert "<a" not in html and "<img" not in html and "href" not in html
    assert "[official firmware](https://evil.example/fw.exe)" in html
    assert "![logo](https://tracker.example/p.png)" in html
    assert "&lt;https://evil.example/x&gt;" in html
    assert html.count('class="cite"') == 2
