"""Cohere rerank (v2) of the fused top N, when COHERE_API_KEY is set."""

from __future__ import annotations

import httpx
from django.conf import settings


class RerankError(Exception):
    pass


def rerank_hits(query: str, hits: list) -> list:
    """Hits reordered by Cohere's relevance score (each gets .rerank_score and .score)."""
    try:
        response = httpx.post(
            f"{settings.COHERE_BASE_URL.rstrip('/')}/v2/rerank",
            headers={"Authorization": f"Bearer {settings.COHERE_API_KEY}"},
            json={
                "model": settings.COHERE_RERANK_MODEL,
                "query": query,
                "documents": [h.content for h in hits],
                "top_n": len(hits),
            },
            timeout=httpx.Timeout(
                settings.RERANK_TIMEOUT, connect=min(5.0, settings.RERANK_TIMEOUT)
            ),
        )
    except httpx.HTTPError as exc:
        raise RerankError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise RerankError(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        results = response.json()["results"]
        order = [(int(r["index"]), float(r["relevance_score"])) for r in results]
    except (ValueError, KeyError, TypeError) as exc:
        raise RerankError(f"unexpected response: {exc}") from exc
    reranked = []
    for index, relevance in order:
        if 0 <= index < len(hits):
            hit = hits[index]
            hit.rerank_score = relevance
            hit.score = relevance
            reranked.append(hit)
    return reranked
