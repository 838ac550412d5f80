"""A passage in the prompt carries its neighbouring chunks of the same section, so a
fact that a chunk boundary cut in two reaches the model whole."""

import pytest

from chats.answering.llm import reset_llm
from chats.models import Chat, Citation
from chats.tests.conftest import events
from documents.models import Chunk
from documents.services import document_ingest
from documents.tests.conftest import make_document
from rra.testing.fakes import FakeOpenAI

pytestmark = pytest.mark.django_db

MANUAL = b"""# Trolley manual

## Trolley calibration

Select Home the trolley to move the trolley to the rear of the machine.
Accurately measure the distance between the rear of the trolley and the hook.
Enter the measured distance on the screen and select Submit values.
Select Home trolley again and measure the distance once more.
If the distance is 35 mm the calibration of the trolley was successful.

## Infeed calibration

Measure the gap between the slider and the end stop of the infeed table.
"""


@pytest.fixture
def llm_server(settings):
    server = FakeOpenAI(api_key="k").start()
    server.reply = "See [1]."
    settings.LLM_BASE_URL = server.base_url
    settings.LLM_API_KEY = "k"
    settings.LLM_MODEL = "fake-model"
    reset_llm()
    yield server
    server.stop()
    reset_llm()


@pytest.fixture
def manual(owner, media, settings):
    settings.CHUNK_TARGET_TOKENS = 40  # the calibration section becomes several chunks
    document = make_document(owner, name="trolley.md", content=MANUAL)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


def _system_prompt(client, owner, server, question) -> tuple[str, list]:
    chat = Chat.objects.create(owner=owner)
    stream = events(
        client.post(
            f"/api/chats/{chat.pk}/messages",
            {"question": question},
            content_type="application/json",
        )
    )
    return server.chat_requests[-1]["messages"][0]["content"], stream


def test_the_prompt_passage_holds_the_neighbouring_chunks_of_its_section(
    owner_client, owner, manual, llm_server, settings
):
    chunks = list(Chunk.objects.filter(document=manual, section__endswith="Trolley calibration"))
    assert len(chunks) >= 2
    before = next(c for c in chunks if "Submit values" in c.content)
    later = next(c for c in chunks if "35 mm" in c.content)
    assert "35 mm" not in before.content and later.index == before.index + 1

    question = "Where do I enter the measured distance and submit the values?"
    system, _ = _system_prompt(owner_client, owner, llm_server, question)

    passage = system.split("[1] trolley.md", 1)[1].split("\n[2]", 1)[0]
    assert "Enter the measured distance" in passage
    assert "If the distance is 35 mm" in passage  # from the next chunk
    assert "end stop of the infeed table" not in passage  # another section
    # The section in the header and once as the text's first line, not per chunk.
    assert passage.count("Trolley manual › Trolley calibration") == 2
    # The citation quotes the cited chunk itself.
    citation = Citation.objects.get(number=1)
    assert citation.quote == Chunk.objects.get(pk=citation.chunk_id).content

    settings.ANSWER_CONTEXT_CHUNKS = 0
    system, _ = _system_prompt(owner_client, owner, llm_server, question)
    passage = system.split("[1] trolley.md", 1)[1].split("\n[2]", 1)[0]
    assert "If the distance is 35 mm" not in passage
