"""An optional second reading of the fused candidates by a cross-encoder, which reads the
question and a passage together and scores whether the passage answers it (the cpu and gpu
profiles: a multilingual bge reranker through sentence-transformers; off where its model is
absent, and in the demo profile)."""

import logging
import threading
from collections.abc import Sequence

import numpy as np

log = logging.getLogger("bishop.retrieval")

NONE = "none"
# cpu: a multilingual MiniLM (118M parameters) reads 20 passages in about a second on a few
# cores, where bge-reranker-v2-m3 (568M) takes several.
PROFILE_MODELS = {
    "demo": NONE,
    "cpu": "cross-encoder/mmarco-mMiniLMv2-L12-H384-v1",
    "gpu": "BAAI/bge-reranker-v2-m3",
}


class Reranker:
    def __init__(self, model: str, device: str | None = None) -> None:
        from sentence_transformers import CrossEncoder

        self.name = model
        self._model = CrossEncoder(model, device=device)
        self._lock = threading.Lock()  # one caller at a time: see SentenceTransformerEmbedder

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """How well each text answers `query`: higher is better."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        pairs = [(query, text) for text in texts]
        with self._lock:
            scores = self._model.predict(pairs, show_progress_bar=False)
        return np.asarray(scores, dtype=np.float32)


def load_reranker(model: str, profile: str, device: str | None = None) -> Reranker | None:
    """The reranker `model` names (empty: the profile's), or None: `none`, or a model that
    cannot be loaded (retrieval then keeps the fused order)."""
    model = model or PROFILE_MODELS[profile]
    if model == NONE:
        return None
    try:
        return Reranker(model, device)
    except Exception as exc:
        log.warning(
            "reranker %s could not be loaded (%s); replies use the fused ranking", model, exc
        )
        return None
