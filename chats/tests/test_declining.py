"""Declining: questions the documents do not answer get "The documents do not cover this."
with no citations and no model call; questions they answer keep their cited passages."""

import pytest

from chats.answering import NOT_COVERED
from chats.answering.llm import reset_llm
from chats.models import Chat, Message
from chats.tests.conftest import events
from documents.services import document_ingest
from documents.tests.conftest import make_document
from rra.testing.fakes import FakeOpenAI

pytestmark = pytest.mark.django_db

# Several sections that share the machine's vocabulary (chuck, calibration, RoboRail),
# so an unanswerable question about it still matches common words.
CORPUS = b"""# RoboRail service manual

## Chuck alignment calibration

Calibrate the chuck alignment every 500 operating hours. Mount the dial gauge on the
reference bar and turn the front chuck by hand. Record the runout in the machine log.

## Chuck rotation

Put a spirit level on top of the front chuck and turn it until the chuck is level.
Then select Done on the remote control to save the home position.

## Network

When the PMAC controller has no communication, check the yellow Ethernet cable in the
control cabinet and ping 192.168.7.10 from the control PC.

## Drive belt

Replace the drive belt of the RoboRail when it shows cracks. Order part RB-2231.
"""

UNANSWERABLE = [
    "What is the capital of Peru?",
    "How do I calibrate the laser thermometer of the RoboRail cooling pump?",
    "Which firmware version does the RoboRail chuck touchscreen need?",
]


def _ask(client, chat, question):
    return client.post(
        f"/api/chats/{chat.pk}/messages", {"question": question}, content_type="application/json"
    )


@pytest.fixture
def corpus(owner, media):
    document = make_document(owner, name="service.md", content=CORPUS)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


@pytest.fixture
def llm_server(settings):
    server = FakeOpenAI(api_key="llm-key").start()
    server.reply = "Replace the belt [1]."
    settings.LLM_BASE_URL = server.base_url
    settings.LLM_API_KEY = "llm-key"
    settings.LLM_MODEL = "fake-model"
    reset_llm()
    yield server
    server.stop()
    reset_llm()


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_it_declines_a_question_the_documents_do_not_answer(owner_client, owner, corpus, question):
    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat, question))

    assert stream[0] == ("citations", {"passages": []})
    answer = "".join(d["text"] for n, d in stream if n == "token")
    assert answer == NOT_COVERED and answer.startswith("The documents do not cover this.")
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.content == NOT_COVERED and not message.citations.exists()


def test_it_answers_a_question_the_documents_answer_with_citations(owner_client, owner, corpus):
    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat, "Which part do I order when the drive belt cracks?"))

    passages = stream[0][1]["passages"]
    assert passages and "Drive belt" in passages[0]["section"]
    answer = "".join(d["text"] for n, d in stream if n == "token")
    assert answer.startswith("Here is what the documents say:") and "RB-2231" in answer
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    assert message.citations.filter(number=1, document_name="service.md").exists()


def test_the_model_is_not_called_when_no_passage_addresses_the_question(
    owner_client, owner, corpus, llm_server
):
    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat, UNANSWERABLE[1]))

    assert "".join(d["text"] for n, d in stream if n == "token") == NOT_COVERED
    assert llm_server.chat_requests == []

    stream = events(_ask(owner_client, chat, "Which part do I order when the drive belt cracks?"))
    assert len(llm_server.chat_requests) == 1
    assert "RB-2231" in llm_server.chat_requests[0]["messages"][0]["content"]


# A question in Dutch over the English manual: no word in common but "PMAC", so only the
# multilingual model's similarity can tell that the Network passage answers it.
DUTCH = "Welk IP-adres moet ik pingen als de PMAC geen verbinding heeft?"


@pytest.fixture
def e5(settings):
    from documents.embeddings import reset_providers

    settings.LOCAL_EMBEDDING_MODEL = "multilingual-e5-small-q4"
    reset_providers()
    yield
    reset_providers()


def test_a_dutch_question_is_answered_from_the_english_passage_the_model_finds(
    owner_client, owner, e5, corpus, llm_server, settings
):
    from chats.answering.retrieval import retrieve

    _passages, kept = retrieve(user=owner, question=DUTCH)
    assert kept and kept[0].section.endswith("Network")
    # Let in by the model's similarity, not by the question's words.
    assert all((h.coverage or 0) < settings.ANSWER_MIN_COVERAGE for h in kept)

    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat, DUTCH))
    assert stream[0][1]["passages"] and len(llm_server.chat_requests) == 1
    assert "192.168.7.10" in llm_server.chat_requests[0]["messages"][0]["content"]


@pytest.mark.parametrize("question", [*UNANSWERABLE, "Wat is de hoofdstad van Peru?"])
def test_the_multilingual_model_still_declines_what_the_documents_do_not_answer(
    owner, e5, corpus, question
):
    from chats.answering.retrieval import retrieve

    passages, kept = retrieve(user=owner, question=question)
    assert passages == [] and kept == []


# --- Questions naming what the library never mentions ------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "How do I check the PMAC network connection with WireGuard?",
        "Which torque does the drive belt of the RoboRail need according to Patroni?",
    ],
)
def test_a_question_naming_something_the_library_never_mentions_is_declined(
    owner_client, owner, corpus, question
):
    from chats.answering.retrieval import unknown_names

    # Every other word of it is the manual's: coverage alone would let it in.
    assert unknown_names(user=owner, question=question) in (["WireGuard"], ["Patroni"])
    chat = Chat.objects.create(owner=owner)
    stream = events(_ask(owner_client, chat, question))
    assert stream[0] == ("citations", {"passages": []})
    assert "".join(d["text"] for n, d in stream if n == "token") == NOT_COVERED


def test_ordinary_words_and_the_librarys_own_spellings_are_not_unknown_names(owner, media):
    from chats.answering.retrieval import unknown_names

    document = make_document(
        owner,
        name="cabinet.md",
        content=b"# Cabinet\n\nUndo the two screws of the RJ45 feed-through coupler. "
        b"The feedtrough cable goes to the PMAC.\n",
    )
    assert document_ingest(document_id=document.pk) == "ready"

    # "budget" and "colleague" are nowhere in the manual, but they are common English.
    assert unknown_names(user=owner, question="What is the budget my colleague needs?") == []
    # The manual writes "feed-through", and once "feedtrough": the same word.
    assert unknown_names(user=owner, question="Which screws hold the feedthrough?") == []
    # "shouldn't" is not a name; a Dutch question's own words are not names either.
    assert unknown_names(user=owner, question="Why shouldn't I undo the coupler?") == []
    assert unknown_names(user=owner, question="Welke schroeven houden de koppeling vast?") == []
    # A name is one in any language.
    assert unknown_names(user=owner, question="Hoe koppel ik de PMAC aan PgBouncer?") == [
        "PgBouncer"
    ]
    assert unknown_names(user=owner, question="Which screws hold the Zephyrix coupler?") == [
        "Zephyrix"
    ]


def test_the_background_of_a_small_library_is_none(owner, corpus):
    from chats.answering.retrieval import background

    # Four sections: too few passages to say what "about the same library" scores, so
    # the absolute thresholds decide (the Dutch tests above).
    assert background(user=owner, query="Welk IP-adres moet ik pingen?") is None
