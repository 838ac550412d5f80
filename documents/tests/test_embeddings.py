"""Embedding providers: the real local model, and Cohere and OpenAI-compatible APIs
through fake servers on loopback (no test touches the network)."""

from __future__ import annotations

import math
import socket
import threading
import time
from contextlib import contextmanager
from unittest import mock

import httpx
import openai
import pytest

from documents.embeddings import (
    CohereProvider,
    EmbeddingError,
    LocalProvider,
    OpenAICompatibleProvider,
    TransientEmbeddingError,
    get_provider,
    reset_providers,
)
from rra.testing.fakes import FakeCohere, FakeOpenAI, fake_vector

COHERE_KEY = "co-test-key"
OPENAI_KEY = "sk-test-key"


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def no_network():
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    with (
        mock.patch.object(socket.socket, "connect", refuse),
        mock.patch.object(socket, "create_connection", refuse),
        mock.patch.object(socket, "getaddrinfo", refuse),
    ):
        yield


@pytest.fixture(scope="session")
def local():
    """The real model, loaded once for the session, with every socket connection refused."""
    provider = LocalProvider()
    with no_network():
        provider.warm_up()
    return provider


@pytest.fixture(autouse=True)
def _fresh_providers():
    yield
    reset_providers()


@pytest.fixture
def cohere_server():
    with FakeCohere(api_key=COHERE_KEY, dimensions=1536) as server:
        yield server


@pytest.fixture
def cohere(cohere_server):
    provider = CohereProvider(api_key=COHERE_KEY, base_url=cohere_server.url, timeout=2.0)
    yield provider
    provider.close()


@pytest.fixture
def openai_server():
    with FakeOpenAI(api_key=OPENAI_KEY, dimensions=768) as server:
        yield server


@pytest.fixture
def compatible(openai_server):
    provider = OpenAICompatibleProvider(
        base_url=openai_server.base_url, api_key=OPENAI_KEY, model="nomic-embed-text", timeout=2.0
    )
    yield provider
    provider.close()


# --- Local model ---------------------------------------------------------------------


def test_it_embeds_with_the_local_model_offline(local):
    vectors = local.embed_documents(["Calibrate the chuck.", "Replace the drive belt."])
    query = local.embed_query("how do I calibrate the chuck?")

    assert local.model_id == "local/all-MiniLM-L6-v2"
    assert local.dimensions == 384
    assert [len(v) for v in [*vectors, query]] == [384, 384, 384]
    for vector in [*vectors, query]:
        assert norm(vector) == pytest.approx(1.0, abs=1e-4)
    assert cosine(query, vectors[0]) > cosine(query, vectors[1])


def test_it_puts_similar_sentences_closer_than_unrelated_ones(local):
    anchor, similar, unrelated = local.embed_documents(
        [
            "Align the chuck using the dial gauge before measuring.",
            "Use a dial indicator to line up the chuck prior to measurement.",
            "The cafeteria serves vegetarian lunch on Fridays.",
        ]
    )
    assert cosine(anchor, similar) > 0.6
    assert cosine(anchor, unrelated) < 0.2


def test_it_counts_tokens_with_the_models_own_tokenizer(local):
    texts = [
        "Hello world",
        "Runout ≤ 0.02 mm — record it (see Fig. 4); Ünïcödé café.",
        "The PMAC controller has no communication. " * 80,  # longer than the model reads
    ]
    tokenizer = local.model.tokenizer
    for text in texts:
        expected = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert local.count_tokens(text) == expected
    assert local.max_input_tokens == local.model.max_seq_length - 2 == 254


def test_it_batches_local_embeddings(local, monkeypatch):
    texts = [f"Check carriage {n} on the rail." for n in range(7)]
    expected = local.embed_documents(texts)
    sizes = []
    encode = local.model.encode

    def spy(batch, **kwargs):
        sizes.append(len(batch))
        return encode(batch, **kwargs)

    monkeypatch.setattr(local, "batch_size", 3)
    monkeypatch.setattr(local.model, "encode", spy)
    vectors = local.embed_documents(texts)

    assert sizes == [3, 3, 1]
    for got, want in zip(vectors, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def test_it_refuses_empty_texts(local):
    with pytest.raises(EmbeddingError, match="nothing to embed"):
        local.embed_documents(["fine", "  "])
    with pytest.raises(EmbeddingError):
        local.embed_query("")
    assert local.embed_documents([]) == []


# --- Cohere --------------------------------------------------------------------------


def test_it_sends_cohere_the_documented_request(cohere, cohere_server):
    vectors = cohere.embed_documents(["Calibrate the chuck.", "Replace the belt."])
    query = cohere.embed_query("chuck calibration")

    document_call, query_call = cohere_server.requests
    assert (document_call.method, document_call.path) == ("POST", "/v2/embed")
    assert document_call.headers["authorization"] == f"Bearer {COHERE_KEY}"
    assert document_call.headers["content-type"] == "application/json"
    assert document_call.json == {
        "model": "embed-v4.0",
        "texts": ["Calibrate the chuck.", "Replace the belt."],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert query_call.json["input_type"] == "search_query"
    assert query_call.json["texts"] == ["chuck calibration"]
    assert vectors[1] == fake_vector("Replace the belt.", 1536, salt="embed-v4.0")
    assert query == fake_vector("chuck calibration", 1536, salt="embed-v4.0")
    assert (cohere.model_id, cohere.dimensions) == ("cohere/embed-v4.0", 1536)


def test_it_batches_cohere_requests_at_96_texts(cohere, cohere_server):
    texts = [f"passage {n}" for n in range(200)]
    vectors = cohere.embed_documents(texts)

    assert [len(r.json["texts"]) for r in cohere_server.requests] == [96, 96, 8]
    assert vectors[150] == fake_vector("passage 150", 1536, salt="embed-v4.0")
    assert CohereProvider(api_key="k", batch_size=500).batch_size == 96


@pytest.mark.parametrize(
    ("status", "transient", "text"),
    [
        (401, False, "Cohere rejected the API key"),
        (403, False, "Cohere rejected the API key"),
        (400, False, "invalid request: texts must not be empty"),
        (422, False, "invalid request: texts must not be empty"),
        (404, False, "check the base URL and the model name"),
        (429, True, "rate limiting"),
        (500, True, "unavailable"),
        (503, True, "unavailable"),
    ],
)
def test_it_maps_cohere_errors(cohere, cohere_server, status, transient, text):
    message = "invalid request: texts must not be empty" if status in (400, 422) else None
    cohere_server.fail_next(status=status, message=message)

    with pytest.raises(EmbeddingError) as caught:
        cohere.embed_documents(["text"])

    assert isinstance(caught.value, TransientEmbeddingError) is transient
    assert caught.value.status == status
    assert text in caught.value.message
    assert cohere.embed_documents(["text"])  # the next call goes through


def test_it_passes_on_coheres_retry_after(cohere, cohere_server):
    cohere_server.fail_next(status=429, retry_after=7)
    with pytest.raises(TransientEmbeddingError) as caught:
        cohere.embed_query("text")
    assert caught.value.retry_after == 7.0
    assert "Trial key" in caught.value.message


def test_it_treats_a_cohere_timeout_as_transient(cohere_server):
    provider = CohereProvider(api_key=COHERE_KEY, base_url=cohere_server.url, timeout=0.3)
    cohere_server.stall_next(seconds=10)
    started = time.monotonic()
    with pytest.raises(TransientEmbeddingError, match=r"did not answer within 0\.3 s"):
        provider.embed_query("text")
    assert time.monotonic() - started < 3


def test_it_treats_an_unreachable_cohere_as_transient():
    provider = CohereProvider(api_key=COHERE_KEY, base_url=closed_port_url(), timeout=1)
    with pytest.raises(TransientEmbeddingError, match="Could not reach Cohere"):
        provider.embed_documents(["text"])


def test_it_rejects_a_wrong_cohere_key_through_the_fake(cohere_server):
    provider = CohereProvider(api_key="wrong", base_url=cohere_server.url)
    with pytest.raises(EmbeddingError, match="invalid api token") as caught:
        provider.embed_query("text")
    assert not isinstance(caught.value, TransientEmbeddingError)
    assert "COHERE_API_KEY" in caught.value.message


def test_it_asks_cohere_for_the_configured_dimensions(cohere_server):
    provider = CohereProvider(api_key=COHERE_KEY, base_url=cohere_server.url, dimensions=512)
    vector = provider.embed_query("text")
    assert cohere_server.requests[0].json["output_dimension"] == 512
    assert len(vector) == provider.dimensions == 512


def test_it_learns_the_dimensions_of_an_unknown_cohere_model(cohere_server):
    provider = CohereProvider(api_key=COHERE_KEY, base_url=cohere_server.url, model="embed-x")
    assert provider._dimensions is None
    assert provider.dimensions == 1536  # one probe request
    assert [r.json["input_type"] for r in cohere_server.requests] == ["search_query"]
    provider.embed_documents(["a"])
    assert len(cohere_server.requests) == 2


def test_it_refuses_vectors_of_the_wrong_size(cohere_server):
    provider = CohereProvider(
        api_key=COHERE_KEY, base_url=cohere_server.url, model="embed-english-v3.0"
    )
    with pytest.raises(EmbeddingError, match="1536-dimensional vectors, expected 1024"):
        provider.embed_documents(["text"])


def test_the_fake_cohere_checks_the_request_format(cohere_server):
    url = f"{cohere_server.url}/v2/embed"
    auth = {"Authorization": f"Bearer {COHERE_KEY}"}
    good = {
        "model": "embed-v4.0",
        "texts": ["a"],
        "input_type": "search_query",
        "embedding_types": ["float"],
    }
    answers = [
        httpx.post(url, json={**good, "input_type": None}, headers=auth),
        httpx.post(url, json={**good, "texts": ["a"] * 97}, headers=auth),
        httpx.post(url, json={**good, "texts": "a"}, headers=auth),
        httpx.post(url, json={**good, "inptu_type": "x"}, headers=auth),
        httpx.post(url, content=b"texts=a", headers=auth),
        httpx.post(url, json=good),
        httpx.get(url, headers=auth),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 400, 400, 401, 405]
    assert answers[0].json()["message"] == (
        "invalid request: valid input_type must be provided with the provided model"
    )
    assert "at most 96 - received 97" in answers[1].json()["message"]
    assert httpx.post(url, json=good, headers=auth).status_code == 200


# --- OpenAI-compatible -------------------------------------------------------------------


def test_it_sends_the_openai_embeddings_request(compatible, openai_server):
    vectors = compatible.embed_documents(["Calibrate the chuck.", "Replace the belt."])
    query = compatible.embed_query("chuck calibration")

    document_call, query_call = openai_server.requests
    assert (document_call.method, document_call.path) == ("POST", "/v1/embeddings")
    assert document_call.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert document_call.json == {
        "model": "nomic-embed-text",
        "input": ["Calibrate the chuck.", "Replace the belt."],
        "encoding_format": "float",
    }
    assert query_call.json["input"] == ["chuck calibration"]
    assert vectors[0] == pytest.approx(
        fake_vector("Calibrate the chuck.", 768, salt="nomic-embed-text")
    )
    assert query == pytest.approx(fake_vector("chuck calibration", 768, salt="nomic-embed-text"))
    assert compatible.model_id == "openai/nomic-embed-text"


def test_it_learns_the_dimensions_from_the_first_answer(compatible, openai_server):
    assert compatible._dimensions is None
    compatible.embed_documents(["a", "b"])
    assert compatible.dimensions == 768
    assert len(openai_server.requests) == 1  # no probe once an answer came


def test_it_asks_text_embedding_3_models_for_the_configured_dimensions(openai_server):
    provider = OpenAICompatibleProvider(
        base_url=openai_server.base_url,
        api_key=OPENAI_KEY,
        model="text-embedding-3-small",
        dimensions=256,
    )
    assert provider.dimensions == 256
    vector = provider.embed_query("text")
    assert openai_server.requests[0].json["dimensions"] == 256
    assert len(vector) == 256
    assert provider.max_input_tokens == 8191


def test_it_checks_the_configured_dimensions_of_other_models(openai_server):
    provider = OpenAICompatibleProvider(
        base_url=openai_server.base_url, api_key=OPENAI_KEY, model="bge-m3", dimensions=1024
    )
    with pytest.raises(EmbeddingError, match="768-dimensional vectors, expected 1024"):
        provider.embed_query("text")
    assert "dimensions" not in openai_server.requests[0].json


def test_it_batches_openai_requests(openai_server):
    provider = OpenAICompatibleProvider(
        base_url=openai_server.base_url, api_key=OPENAI_KEY, model="m", batch_size=10
    )
    texts = [f"passage {n}" for n in range(25)]
    vectors = provider.embed_documents(texts)
    assert [len(r.json["input"]) for r in openai_server.requests] == [10, 10, 5]
    assert vectors[24] == pytest.approx(fake_vector("passage 24", 768, salt="m"))


@pytest.mark.parametrize(
    ("status", "transient", "text"),
    [
        (401, False, "rejected the API key"),
        (403, False, "rejected the API key"),
        (400, False, "'$.input' is invalid"),
        (422, False, "'$.input' is invalid"),
        (404, False, "check the base URL and the model name"),
        (429, True, "rate limiting"),
        (500, True, "unavailable"),
        (502, True, "unavailable"),
    ],
)
def test_it_maps_openai_errors(compatible, openai_server, status, transient, text):
    message = "'$.input' is invalid" if status in (400, 422) else None
    openai_server.fail_next(status=status, message=message)

    with pytest.raises(EmbeddingError) as caught:
        compatible.embed_documents(["text"])

    assert isinstance(caught.value, TransientEmbeddingError) is transient
    assert caught.value.status == status
    assert text in caught.value.message
    assert isinstance(caught.value.__cause__, openai.APIStatusError)
    assert len(openai_server.requests) == 1  # the client itself did not retry


def test_it_passes_on_openais_retry_after(compatible, openai_server):
    openai_server.fail_next(status=429, retry_after=2.5)
    with pytest.raises(TransientEmbeddingError) as caught:
        compatible.embed_query("text")
    assert caught.value.retry_after == 2.5
    assert isinstance(caught.value.__cause__, openai.RateLimitError)


def test_it_rejects_a_wrong_openai_key_through_the_fake(openai_server):
    provider = OpenAICompatibleProvider(
        base_url=openai_server.base_url, api_key="sk-wrong-key", model="m"
    )
    with pytest.raises(EmbeddingError, match="Incorrect API key") as caught:
        provider.embed_query("text")
    assert isinstance(caught.value.__cause__, openai.AuthenticationError)
    assert "EMBEDDINGS_API_KEY" in caught.value.message


def test_it_treats_an_openai_timeout_as_transient(openai_server):
    provider = OpenAICompatibleProvider(
        base_url=openai_server.base_url, api_key=OPENAI_KEY, model="m", timeout=0.3
    )
    openai_server.stall_next(seconds=10)
    started = time.monotonic()
    with pytest.raises(TransientEmbeddingError, match=r"did not answer within 0\.3 s") as caught:
        provider.embed_query("text")
    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
    assert time.monotonic() - started < 3


def test_it_treats_an_unreachable_server_as_transient():
    provider = OpenAICompatibleProvider(base_url=closed_port_url() + "/v1", model="m", timeout=1)
    with pytest.raises(TransientEmbeddingError, match="could not be reached") as caught:
        provider.embed_query("text")
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)


def test_it_works_with_a_server_that_takes_no_key():
    with FakeOpenAI(api_key=None, dimensions=32) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, model="all-minilm")
        assert len(provider.embed_query("text")) == 32


def test_the_fake_openai_server_speaks_the_clients_default_base64():
    with FakeOpenAI(api_key=OPENAI_KEY, dimensions=8, models=["m"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=OPENAI_KEY, max_retries=0)
        response = client.embeddings.create(model="m", input=["hello"])
        assert server.requests[0].json["encoding_format"] == "base64"
        assert response.data[0].embedding == pytest.approx(fake_vector("hello", 8, salt="m"))
        assert response.usage.total_tokens > 0
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            client.embeddings.create(model="other", input=["hello"])
        with pytest.raises(openai.BadRequestError, match="Unrecognized request argument"):
            client.embeddings.create(model="m", input=["hello"], extra_body={"colour": "red"})


# --- One provider per process ------------------------------------------------------------


def test_it_builds_one_provider_per_process(settings, cohere_server):
    settings.EMBEDDINGS_PROVIDER = "cohere"
    settings.COHERE_API_KEY = COHERE_KEY
    settings.COHERE_BASE_URL = cohere_server.url
    settings.COHERE_EMBED_MODEL = "embed-v4.0"
    settings.EMBEDDINGS_DIMENSIONS = None
    settings.EMBEDDINGS_BATCH_SIZE = 50
    seen = []
    barrier = threading.Barrier(8)

    def build():
        barrier.wait()
        seen.append(get_provider())

    threads = [threading.Thread(target=build) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(p) for p in seen}) == 1
    provider = seen[0]
    assert isinstance(provider, CohereProvider)
    assert provider is get_provider("cohere")
    assert provider.batch_size == 50
    assert provider.embed_query("text") == fake_vector("text", 1536, salt="embed-v4.0")


def test_it_builds_the_local_provider_by_default_and_shares_the_model(settings, local):
    settings.EMBEDDINGS_PROVIDER = "local"
    settings.LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
    settings.EMBEDDINGS_BATCH_SIZE = None
    provider = get_provider()
    assert isinstance(provider, LocalProvider)
    assert provider is get_provider("local")
    assert provider.batch_size == 32
    assert provider.count_tokens("hello world") == 2
    assert provider.model is local.model  # loaded once per process


def test_it_explains_a_missing_openai_configuration(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.EMBEDDINGS_BASE_URL = None
    with pytest.raises(ImproperlyConfigured, match="EMBEDDINGS_BASE_URL"):
        get_provider("openai")


# --- Query vector cache ------------------------------------------------------------------


def test_it_embeds_a_repeated_query_once(compatible, openai_server, redis_url):
    first = compatible.embed_query("chuck calibration")
    again = compatible.embed_query("chuck calibration")
    assert len(openai_server.requests) == 1
    # float32, as pgvector stores it
    assert again == pytest.approx(first, rel=1e-6)
    compatible.embed_query("belt tension")
    assert len(openai_server.requests) == 2


def test_a_new_provider_instance_reads_the_cached_query_and_learns_its_size(
    openai_server, redis_url
):
    def provider():
        return OpenAICompatibleProvider(
            base_url=openai_server.base_url,
            api_key=OPENAI_KEY,
            model="nomic-embed-text",
            timeout=2.0,
        )

    one, two = provider(), provider()
    one.embed_query("chuck calibration")
    assert two._dimensions is None
    two.embed_query("chuck calibration")
    assert two.dimensions == 768
    assert len(openai_server.requests) == 1
    one.close()
    two.close()


def test_the_query_cache_can_be_switched_off(compatible, openai_server, settings):
    settings.QUERY_EMBEDDING_CACHE_TTL = 0
    compatible.embed_query("chuck calibration")
    compatible.embed_query("chuck calibration")
    assert len(openai_server.requests) == 2
