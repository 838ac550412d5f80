"""Fixtures of the platform tests (rra/tests)."""

from __future__ import annotations

import pytest

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
