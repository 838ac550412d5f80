"""LLM providers: the real openai client against FakeOpenAI on loopback (no test touches
the network), the choice of provider from settings, and the offline extractive answerer."""

from __future__ import annotations

import itertools
import re
import socket
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from chats.answering import llm as llm_module
from chats.answering.llm import (
    ChatCompletionsLLM,
    ExtractiveLLM,
    LLMError,
    Passage,
    Token,
    TransientLLMError,
    Turn,
    Usage,
    get_llm,
    reset_llm,
)
from chats.answering.prompts import cited_numbers
from rra.testing.fakes import FakeOpenAI

KEY = "sk-test-llm-key"
MODEL = "test-model"
REPLY = "Calibrate the chuck every 500 operating hours [1]. Record the runout in the log [2]."

PASSAGES = [
    Passage(
        number=1,
        text=(
            "RoboRail maintenance › Calibration\n"
            "Calibrate the chuck alignment every 500 operating hours. Use the dial gauge on "
            "the reference bar.\nRecord the runout in the machine log."
        ),
        document="RoboRail manual.pdf",
        pages="p. 3",
        section="RoboRail maintenance › Calibration",
        score=0.82,
    ),
    Passage(
        number=2,
        text=(
            "When the PMAC has no communication, check the internal network cable between "
            "the controller and the switch. Then restart the measurement software."
        ),
        document="RoboRail manual.pdf",
        pages="pp. 7–8",
        section="Troubleshooting",
        score=0.61,
    ),
    Passage(
        number=3,
        text="Replace the drive belt when it shows cracks. Order part RB-2231 from the vendor.",
        document="notes.md",
        pages="",
        score=0.40,
    ),
]
HISTORY = [
    Turn("user", "What is the RoboRail?"),
    Turn("assistant", "A rail-mounted measuring robot [1]."),
]


def collect(stream) -> tuple[list[Token], list[Usage]]:
    items = list(stream)
    return [i for i in items if isinstance(i, Token)], [i for i in items if isinstance(i, Usage)]


def drain(stream, tokens: list[Token]) -> None:
    """Iterate into tokens (kept when the stream raises part-way)."""
    for item in stream:
        if isinstance(item, Token):
            tokens.append(item)


def ask(llm, question="How often do I calibrate the chuck?", passages=PASSAGES, history=()):
    return llm.stream(question=question, passages=list(passages), history=list(history))


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(autouse=True)
def _fresh_llm():
    reset_llm()
    yield
    reset_llm()


@pytest.fixture
def server():
    with FakeOpenAI(api_key=KEY, models={MODEL, "grok-test"}, reply=REPLY) as fake:
        yield fake


def make_llm(server, **options) -> ChatCompletionsLLM:
    config = {
        "name": "openai",
        "base_url": server.base_url,
        "model": MODEL,
        "api_key": KEY,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        **options,
    }
    return ChatCompletionsLLM(**config)


@pytest.fixture
def llm(server):
    provider = make_llm(server)
    yield provider
    provider.close()


@pytest.fixture
def no_llm_settings(settings):
    settings.XAI_API_KEY = None
    settings.LLM_BASE_URL = None
    settings.LLM_API_KEY = None
    settings.LLM_MODEL = None
    return settings


# --- Streaming through the openai client ------------------------------------------------


def test_it_streams_the_tokens_in_order_and_they_join_to_the_reply(llm):
    tokens, _ = collect(ask(llm))

    assert len(tokens) == len(REPLY.split())
    assert [t.text for t in tokens][:3] == ["Calibrate", " the", " chuck"]
    assert "".join(t.text for t in tokens) == REPLY


def test_it_ends_with_exactly_one_usage_from_the_server(llm, server):
    items = list(ask(llm))
    usage = items[-1]

    assert [type(i) for i in items].count(Usage) == 1
    expected = FakeOpenAI.chat_usage(server.chat_requests[-1]["messages"], REPLY)
    assert usage == Usage(expected["prompt_tokens"], expected["completion_tokens"], MODEL, "stop")


def test_it_estimates_the_usage_when_the_server_sends_none(llm, server):
    server.send_usage = False

    _, [usage] = collect(ask(llm))

    assert usage.model == MODEL
    assert usage.prompt_tokens > 100  # the system prompt and passages at least
    assert 10 <= usage.completion_tokens <= 40


def test_it_sends_the_system_prompt_with_numbered_passages_then_history_then_question(llm, server):
    list(ask(llm, history=HISTORY))

    messages = server.chat_requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    system = messages[0]["content"]
    assert "only from the numbered passages" in system
    assert (
        "[1] RoboRail manual.pdf, p. 3 — RoboRail maintenance › Calibration\n"
        "RoboRail maintenance › Calibration\nCalibrate the chuck alignment" in system
    )
    assert "[2] RoboRail manual.pdf, pp. 7–8 — Troubleshooting\nWhen the PMAC" in system
    assert "[3] notes.md\nReplace the drive belt" in system
    assert messages[1:3] == [
        {"role": "user", "content": "What is the RoboRail?"},
        {"role": "assistant", "content": "A rail-mounted measuring robot [1]."},
    ]
    assert messages[3] == {"role": "user", "content": "How often do I calibrate the chuck?"}


def test_it_asks_for_a_stream_with_usage_and_the_configured_sampling(server):
    provider = make_llm(server, temperature=0.7, max_tokens=321)
    list(ask(provider))
    provider.close()

    request = server.requests[-1]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.json
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.7
    assert body["max_tokens"] == 321


def test_it_sends_nothing_until_the_stream_is_read(llm, server):
    stream = ask(llm)
    assert server.chat_requests == []

    next(stream)
    assert len(server.chat_requests) == 1


def test_it_sends_only_the_recent_history_that_fits_the_budget(server):
    old = [Turn("user", "word " * 300), Turn("assistant", "word " * 300)]
    provider = make_llm(server, history_token_budget=100)
    list(ask(provider, history=[*old, *HISTORY]))
    provider.close()

    messages = server.chat_requests[-1]["messages"]
    assert [m["content"] for m in messages[1:-1]] == [t.content for t in HISTORY]


def test_it_reports_an_answer_cut_at_max_tokens(server):
    provider = make_llm(server, max_tokens=5)
    tokens, [usage] = collect(ask(provider))
    provider.close()

    assert usage.finish_reason == "length"
    assert REPLY.startswith("".join(t.text for t in tokens))
    assert len(tokens) < len(REPLY.split())


def test_it_sends_a_placeholder_key_to_a_server_that_takes_none():
    with FakeOpenAI(api_key=None, reply="Fine [1].") as keyless:
        provider = ChatCompletionsLLM(
            name="openai", base_url=keyless.base_url, model="llama3.1:8b", api_key=""
        )
        tokens, _ = collect(ask(provider))
        provider.close()

        assert "".join(t.text for t in tokens) == "Fine [1]."
        assert keyless.requests[-1].headers["authorization"] == "Bearer no-key"


# --- Errors --------------------------------------------------------------------------------


def test_it_explains_a_rejected_api_key(server):
    provider = make_llm(server, api_key="sk-wrong")

    with pytest.raises(LLMError) as caught:
        list(ask(provider))
    provider.close()

    assert not isinstance(caught.value, TransientLLMError)
    assert caught.value.status == 401
    assert caught.value.message == (
        "The language model service rejected the API key (check LLM_API_KEY)."
    )


def test_it_explains_an_unknown_model(server):
    provider = make_llm(server, model="no-such-model")

    with pytest.raises(LLMError) as caught:
        list(ask(provider))
    provider.close()

    assert not isinstance(caught.value, TransientLLMError)
    assert caught.value.message.startswith(
        f"Model 'no-such-model' was not found at LLM_BASE_URL ({server.base_url})"
    )
    assert "LLM_MODEL" in caught.value.message


@pytest.mark.parametrize(
    ("status", "transient", "text"),
    [
        (400, False, "refused the request (HTTP 400)"),
        (403, False, "refused access to model 'test-model'"),
        (408, True, "unavailable (HTTP 408)"),
        (429, True, "rate limiting"),
        (500, True, "unavailable (HTTP 500)"),
        (502, True, "unavailable (HTTP 502)"),
        (503, True, "unavailable (HTTP 503)"),
    ],
)
def test_it_maps_http_errors(llm, server, status, transient, text):
    server.fail_next(status=status)

    with pytest.raises(LLMError) as caught:
        list(ask(llm))

    assert isinstance(caught.value, TransientLLMError) is transient
    assert caught.value.status == status
    assert text in caught.value.message


def test_it_passes_on_the_retry_after_of_a_429(llm, server):
    server.fail_next(status=429, retry_after=7)

    with pytest.raises(TransientLLMError) as caught:
        list(ask(llm))

    assert caught.value.retry_after == 7.0


def test_it_treats_an_exhausted_quota_as_permanent(llm, server):
    server.route(
        "POST",
        "/v1/chat/completions",
        lambda request: server.error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        ),
    )

    with pytest.raises(LLMError) as caught:
        list(ask(llm))

    assert not isinstance(caught.value, TransientLLMError)
    assert "no credit left" in caught.value.message


def test_it_explains_a_prompt_longer_than_the_context_window(llm, server):
    server.route(
        "POST",
        "/v1/chat/completions",
        lambda request: server.error(
            400,
            "This model's maximum context length is 8192 tokens.",
            code="context_length_exceeded",
            param="messages",
        ),
    )

    with pytest.raises(LLMError) as caught:
        list(ask(llm))

    assert caught.value.message == (
        "The question, passages and history are too long for model 'test-model'."
    )


def test_it_treats_a_server_that_does_not_answer_in_time_as_transient(server):
    provider = make_llm(server, read_timeout=0.3)
    server.stall_next(seconds=5)

    started = time.monotonic()
    with pytest.raises(TransientLLMError) as caught:
        list(ask(provider))
    provider.close()

    assert time.monotonic() - started < 3
    assert "did not respond in time" in caught.value.message


def test_it_treats_a_refused_connection_as_transient():
    provider = ChatCompletionsLLM(
        name="openai", base_url=closed_port_url(), model=MODEL, api_key=KEY, connect_timeout=1
    )

    with pytest.raises(TransientLLMError) as caught:
        list(ask(provider))
    provider.close()

    assert caught.value.message.startswith("Could not reach the language model service at")


def test_it_raises_after_the_tokens_when_the_stream_breaks(llm, server):
    server.break_stream_next(after_chunks=3)
    tokens: list[Token] = []

    with pytest.raises(TransientLLMError) as caught:
        drain(ask(llm), tokens)

    assert "".join(t.text for t in tokens) == "Calibrate the chuck"
    assert "lost while the answer was streaming" in caught.value.message


def test_it_raises_when_the_stream_stalls_longer_than_the_read_timeout(server):
    provider = make_llm(server, read_timeout=0.3)
    server.stall_stream_next(after_chunks=2, seconds=5)
    tokens: list[Token] = []

    started = time.monotonic()
    with pytest.raises(TransientLLMError) as caught:
        drain(ask(provider), tokens)
    provider.close()

    assert time.monotonic() - started < 3
    assert "".join(t.text for t in tokens) == "Calibrate the"
    assert "nothing arrived for 0.3 s" in caught.value.message


def test_it_waits_through_a_pause_shorter_than_the_read_timeout(server):
    provider = make_llm(server, read_timeout=2.0)
    server.stall_stream_next(after_chunks=2, seconds=0.3)

    tokens, [usage] = collect(ask(provider))
    provider.close()

    assert "".join(t.text for t in tokens) == REPLY
    assert usage.finish_reason == "stop"


def _reads(tokens: list[tuple[float, str]]) -> int:
    """Reads that brought the tokens: a token after a gap came with a read of its own."""
    return 1 + sum(b - a > 0.025 for (a, _), (b, _) in itertools.pairwise(tokens))


def _timed(stream) -> tuple[list[tuple[float, str]], float]:
    started = time.monotonic()
    tokens = [(time.monotonic() - started, i.text) for i in stream if isinstance(i, Token)]
    return tokens, time.monotonic() - started


def test_it_reads_the_stream_once_per_interval_after_the_first_token(server):
    """The worker's thread woke and read the socket for every chunk of every answer (at
    200 answers, thousands of wake-ups a second, each taking the GIL): with a read
    interval, one read takes every chunk that came meanwhile."""
    server.reply = " ".join(f"w{n}" for n in range(40))
    server.token_delay = 0.05  # 20 tokens/s: 2 s
    provider = make_llm(server, read_interval=0.3)

    tokens, seconds = _timed(ask(provider))
    provider.close()

    assert "".join(text for _, text in tokens) == server.reply
    assert _reads(tokens) <= 15  # about 2 s / 0.3 s; one per token (40) without the interval
    assert seconds < 2 + 1.5  # no slower than the model, give or take the last interval

    # Without one, every token is read as it comes.
    plain = make_llm(server)
    tokens, _ = _timed(ask(plain))
    plain.close()
    assert _reads(tokens) > 30


def test_streams_read_at_once_share_the_reads_per_second(server):
    """At 200 answers each read every 100 ms, the worker's threads woke 2,000 times a
    second, each taking the GIL in turn, and an answer starting waited seconds for it
    (bench/README.md, answer bursts, 2026-12-08): with ANSWER_MODEL_READS_PER_S the
    streams of a process share that many reads, so each is read less often the more
    there are; the first token of each still comes at once, and no text is lost."""
    server.reply = " ".join(f"w{n}" for n in range(40))
    server.token_delay = 0.05  # 20 tokens/s: 2 s
    provider = make_llm(server, read_interval=0.05, reads_per_second=4)
    results: list[tuple[list[tuple[float, str]], float]] = []

    def one() -> None:
        results.append(_timed(ask(provider)))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    provider.close()

    assert len(results) == 4
    for tokens, seconds in results:
        assert "".join(text for _, text in tokens) == server.reply
        assert tokens[0][0] < 0.5  # the first token unpaced
        # 4 streams sharing 4 reads a second: one read a second each (about 3 in 2 s),
        # not one per 50 ms (40, a read per token).
        assert _reads(tokens) <= 8
        assert seconds < 2 + 2.5
    assert llm_module._PacedReads._streams == 0  # every stream counted out

    # Alone, it has the 4 reads a second to itself (40 tokens over 4 s: about 16).
    provider = make_llm(server, read_interval=0.05, reads_per_second=4)
    server.token_delay = 0.1
    tokens, _ = _timed(ask(provider))
    provider.close()
    assert _reads(tokens) > 8


def test_its_first_token_is_read_at_once_also_on_the_next_stream_of_the_connection(server):
    server.reply = "one two three"
    server.token_delay = 0.1
    provider = make_llm(server, read_interval=2.0)

    for _ in range(2):  # the second reuses the pooled connection, given back unpaced
        tokens, seconds = _timed(ask(provider))
        assert [text for _, text in tokens] == ["one", " two", " three"]
        assert tokens[0][0] < 1.5 <= seconds  # the first at once, the rest after 2 s
    provider.close()


def test_it_raises_on_an_error_event_in_the_stream(llm, server):
    server.error_stream_next(after_chunks=1, message="The server is overloaded.")
    tokens: list[Token] = []

    with pytest.raises(TransientLLMError) as caught:
        drain(ask(llm), tokens)

    assert [t.text for t in tokens] == ["Calibrate"]
    assert "The server is overloaded." in caught.value.message


# --- Choosing the provider -----------------------------------------------------------------


def test_it_uses_xai_when_its_key_is_set(no_llm_settings, server):
    settings = no_llm_settings
    settings.XAI_API_KEY = KEY
    settings.XAI_BASE_URL = server.base_url
    settings.XAI_MODEL = "grok-test"
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"  # xAI wins over it
    settings.LLM_MODEL = "other"

    llm = get_llm()
    tokens, [usage] = collect(ask(llm))

    assert (llm.name, llm.model) == ("xai", "grok-test")
    assert "".join(t.text for t in tokens) == REPLY
    assert usage.model == "grok-test"
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert server.chat_requests[-1]["model"] == "grok-test"


def test_it_names_the_xai_settings_in_its_errors(no_llm_settings, server):
    no_llm_settings.XAI_API_KEY = "xai-wrong-key"
    no_llm_settings.XAI_BASE_URL = server.base_url

    with pytest.raises(LLMError) as caught:
        list(ask(get_llm()))

    assert "(check XAI_API_KEY)" in caught.value.message


def test_it_uses_the_openai_compatible_server_without_an_xai_key(no_llm_settings, server):
    no_llm_settings.LLM_BASE_URL = server.base_url
    no_llm_settings.LLM_API_KEY = KEY
    no_llm_settings.LLM_MODEL = MODEL
    no_llm_settings.LLM_TEMPERATURE = 0.5
    no_llm_settings.LLM_MAX_TOKENS = 77

    llm = get_llm()
    tokens, _ = collect(ask(llm))

    assert (llm.name, llm.model) == ("openai", MODEL)
    assert "".join(t.text for t in tokens) == REPLY
    body = server.chat_requests[-1]
    assert (body["temperature"], body["max_tokens"]) == (0.5, 77)


def test_it_answers_extractively_without_llm_settings(no_llm_settings):
    llm = get_llm()

    assert isinstance(llm, ExtractiveLLM)
    assert (llm.name, llm.model) == ("extractive", "extractive")


def test_it_requires_a_model_name_with_llm_base_url(no_llm_settings):
    no_llm_settings.LLM_BASE_URL = "http://127.0.0.1:11434/v1"

    with pytest.raises(ImproperlyConfigured, match="LLM_MODEL"):
        get_llm()


def test_it_builds_the_llm_once_per_process(no_llm_settings, server):
    no_llm_settings.LLM_BASE_URL = server.base_url
    no_llm_settings.LLM_MODEL = MODEL
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_llm())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(llm) for llm in seen}) == 1
    first = get_llm()
    reset_llm()
    assert get_llm() is not first


# --- Extractive answers --------------------------------------------------------------------


def extractive(question: str, passages=PASSAGES) -> tuple[str, list[Token], Usage]:
    tokens, [usage] = collect(
        ExtractiveLLM().stream(question=question, passages=list(passages), history=[])
    )
    return "".join(t.text for t in tokens), tokens, usage


def quoted_sentences(answer: str) -> list[tuple[str, int]]:
    """(sentence, cited number) of each line after the lead-in."""
    lead, _, body = answer.partition("\n\n")
    assert lead and "\n" not in lead
    lines = []
    for line in body.splitlines():
        match = re.fullmatch(r"- (.+?)(?: …)? \[(\d+)\]", line)
        assert match, f"not a quoted line: {line!r}"
        sentence = match.group(1).replace("\\[", "[").replace("\\]", "]")  # Markdown escapes
        lines.append((sentence, int(match.group(2))))
    return lines


def normalized(text: str) -> str:
    return " ".join(text.split())


def test_it_quotes_only_sentences_of_the_passage_it_cites():
    answer, _, _ = extractive(
        "How often should I calibrate the chuck, and where is the runout recorded?"
    )
    by_number = {p.number: normalized(p.text) for p in PASSAGES}

    quoted = quoted_sentences(answer)
    assert quoted
    for sentence, number in quoted:
        assert sentence in by_number[number]


def test_it_cites_only_the_given_passage_numbers():
    answer, _, _ = extractive("What do I check when the PMAC has no communication with the switch?")

    numbers = cited_numbers(answer)
    assert numbers
    assert set(numbers) <= {p.number for p in PASSAGES}
    assert numbers == [2]


def test_it_picks_the_sentences_that_share_words_with_the_question():
    answer, _, _ = extractive("How often do I calibrate the chuck?")

    sentences = [s for s, _ in quoted_sentences(answer)]  # a bullet holds a paragraph
    assert any(
        s.startswith("Calibrate the chuck alignment every 500 operating hours.") for s in sentences
    )
    assert not any("drive belt" in s or "PMAC" in s for s in sentences)


def test_it_leaves_out_the_section_line_and_repeated_sentences():
    overlap = Passage(
        4, "Record the runout in the machine log. Keep the log with the machine.", "m.pdf", "p. 4"
    )
    answer, _, _ = extractive("Where do I record the runout in the log?", [*PASSAGES, overlap])

    sentences = [s for s, _ in quoted_sentences(answer)]
    assert sentences.count("Record the runout in the machine log.") == 1
    assert not any("›" in s for s in sentences)


def test_it_quotes_at_most_five_matched_sentences_with_their_paragraphs():
    many = [
        Passage(
            n,
            f"The spindle needs grease on side {n}. The spindle needs oil on side {n}.",
            "m.pdf",
            f"p. {n}",
        )
        for n in range(1, 5)
    ]
    answer, _, _ = extractive("spindle grease oil", many)

    # Five sentences match (the best passages first); each brings its paragraph's other
    # sentence, so three passages are quoted whole and the fourth not at all.
    quoted = quoted_sentences(answer)
    assert [n for _, n in quoted] == [1, 2, 3]
    assert all(s.count("The spindle needs") == 2 for s, _ in quoted)


def test_a_quoted_line_that_ends_with_a_colon_brings_the_lines_it_introduces():
    passage = Passage(
        1,
        "Watch the laser value while the trolley moves to the rear.\n"
        "If the laser value increases:\n"
        "Move the rear chuck slightly to the left.\n"
        "Tighten the two bolts again.\n"
        "If the laser value decreases:\n"
        "Move the rear chuck slightly to the right.\n",
        "align.pdf",
        "p. 2",
    )

    answer, _, _ = extractive("What do I do if the laser value increases?", [passage])

    sentences = [s for s, _ in quoted_sentences(answer)]
    at = sentences.index("If the laser value increases:")
    assert sentences[at + 1 : at + 3] == [
        "Move the rear chuck slightly to the left.",
        "Tighten the two bolts again.",
    ]
    # A line that introduces again ends the continuation of the one before it.
    assert sentences.count("Move the rear chuck slightly to the right.") <= 1


@pytest.mark.parametrize(
    ("text", "question", "quoted", "absent"),
    [
        pytest.param(
            "Measure the distance between the trolley and the hook (\uf0e0 Image 5).\n",
            "How do I measure the distance to the hook?",
            "Measure the distance between the trolley and the hook (Image 5).",
            "\uf0e0",
            id="glyph-beside-text",
        ),
        pytest.param(
            "Press the emergency button (\uf04c) on the remote control to stop the machine.\n",
            "How do I stop the machine with the remote control?",
            "Press the emergency button on the remote control to stop the machine.",
            "()",
            id="glyph-alone-in-brackets",
        ),
    ],
)
def test_it_leaves_symbol_font_glyphs_out_of_quotes(text, question, quoted, absent):
    answer, _, _ = extractive(question, [Passage(1, text, "m.pdf", "p. 3")])

    assert quoted in answer
    assert absent not in answer


def test_brackets_that_were_empty_in_the_manual_stay():
    passage = Passage(1, "Call reset() on the controller to clear the error.\n", "m.md", "")

    answer, _, _ = extractive("How do I clear the error on the controller?", [passage])

    assert "Call reset() on the controller to clear the error." in answer


def test_it_never_quotes_table_of_contents_lines():
    passage = Passage(
        1,
        "3.2 Diagnostic data collection ........................................ 8\n"
        "In the Advanced menu: select Generate data collection.\n",
        "m.pdf",
        "p. 1",
    )

    answer, _, _ = extractive("How do I generate a diagnostic data collection?", [passage])

    assert "....." not in answer
    assert "Generate data collection" in answer


def test_it_escapes_bracketed_numbers_of_the_document_so_they_are_not_citations():
    passage = Passage(
        2, "Torque values for the rail bolts are in table [4] of the annex.", "m.pdf", "p. 9"
    )

    answer, _, _ = extractive("Where are the torque values for the rail bolts?", [passage])

    assert cited_numbers(answer) == [2]
    assert r"table \[4\] of the annex. [2]" in answer


def test_it_says_the_documents_do_not_cover_a_question_without_passages():
    answer, _, usage = extractive("How do I bake bread?", [])

    assert "do not cover" in answer
    assert cited_numbers(answer) == []
    assert usage.model == "extractive"


@pytest.mark.django_db  # the question's language (documents.languages)
def test_it_declines_when_no_word_of_the_question_matches():
    answer, _, _ = extractive("Why is it squeaking?", PASSAGES)

    assert answer.startswith("The documents do not cover this.")
    assert cited_numbers(answer) == []


@pytest.mark.django_db  # the question's language (documents.languages)
def test_it_declines_when_only_common_words_of_the_question_match():
    # "calibrate" and "chuck" are in the passages; what the question is about is not.
    answer, _, _ = extractive(
        "How do I calibrate the laser thermometer of the chuck cooling pump?", PASSAGES
    )

    assert answer.startswith("The documents do not cover this.")
    assert cited_numbers(answer) == []


def test_it_answers_a_question_its_sentences_address_with_citations():
    answer, _, _ = extractive("Which part number do I order for a cracked drive belt?", PASSAGES)

    assert answer.startswith("Here is what the documents say:")
    assert cited_numbers(answer) == [3]
    assert "RB-2231" in answer


def test_it_streams_the_extractive_answer_word_by_word_with_estimated_usage():
    answer, tokens, usage = extractive("How often do I calibrate the chuck?")

    assert len(tokens) == len(answer.split())
    assert all(t.text.strip() and " " not in t.text.strip() for t in tokens)
    assert usage.model == "extractive"
    assert usage.prompt_tokens > usage.completion_tokens > 0


# --- The fake server itself ------------------------------------------------------------------


def test_it_fake_answers_a_non_streaming_request_too(server):
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}]
    )
    client.close()

    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > 0


def test_it_fake_replies_with_a_function_of_the_request(server):
    server.reply = lambda body: f"You asked: {body['messages'][-1]['content']}"
    provider = make_llm(server)

    tokens, _ = collect(ask(provider, question="Where is the fuse?"))
    provider.close()

    assert "".join(t.text for t in tokens) == "You asked: Where is the fuse?"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": "Hi"}, "messages"),
        ({"messages": [{"role": "robot", "content": "Hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"model": ""}, "model"),
        ({"stream": "yes"}, "stream"),
        ({"stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"bogus": 1}, None),
    ],
)
def test_it_fake_refuses_a_malformed_chat_request_like_openai(server, change, param):
    import httpx

    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    body.update(change)
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert error["param"] == param
