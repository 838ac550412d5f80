"""Fixtures of the platform tests (rra/tests)."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from rra import logs
from rra.testing.fakes import FakeOpenAI

# The query-count and query-plan tests search with small fake vectors.
DIMS = 16
MODEL = "text-embedding-3-small"
MODEL_ID = f"openai/{MODEL}"


@pytest.fixture
def fake_embeddings(settings):
    """Embeddings from a fake OpenAI server on 127.0.0.1 (DIMS-long vectors of MODEL)."""
    from documents.embeddings import reset_providers

    with FakeOpenAI(dimensions=DIMS) as server:
        settings.EMBEDDINGS_PROVIDER = "openai"
        settings.EMBEDDINGS_BASE_URL = server.base_url
        settings.EMBEDDINGS_API_KEY = server.api_key
        settings.EMBEDDINGS_MODEL = MODEL
        reset_providers()
        yield server
    reset_providers()


@pytest.fixture
def log_lines():
    """JSON lines written during the test, at DEBUG and up, through the real formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line]

    yield read
    root.removeHandler(handler)
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()
