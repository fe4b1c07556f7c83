"""A material, whatever its kind, to a transcript: clean text, passages and dialogue pairs."""

import base64
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from bishop_text.ingest import documents, telegram
from bishop_text.ingest.clean import clean
from bishop_text.ingest.errors import MaterialError
from bishop_text.ingest.limits import Limits
from bishop_text.ingest.media import Transcriber
from bishop_text.ingest.passages import passages as pack
from bishop_text.retrieval.embeddings import Embedder

__all__ = ["Limits", "MaterialError", "Transcript", "extract"]

EMBED_BATCH = 16


@dataclass
class Transcript:
    text: str
    passages: list[str]
    pairs: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    title: str = ""  # the material's name: indexed with each passage, as its context
    # The passages' embeddings (float16 rows, base64) and the model that made them: a reply
    # then embeds only its question.
    vectors: str = ""
    vector_model: str = ""
    vector_rows: int = 0  # embedded passages, from the first: all, unless time ran out
    # A chat export's senders and their message counts, most first; empty for other kinds.
    senders: list[tuple[str, int]] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Transcript":
        return cls(**json.loads(data))

    def embed(self, embedder: Embedder, seconds: float = math.inf) -> None:
        """Embed the passages, in order, for up to `seconds`: a long material on a slow CPU
        gets vectors for its first passages, and is found by its words alone after them."""
        texts = [f"{self.title}\n{p}" if self.title else p for p in self.passages]
        deadline = time.monotonic() + seconds
        blocks = []
        for start in range(0, len(texts), EMBED_BATCH):
            if blocks and time.monotonic() > deadline:
                break
            blocks.append(embedder.passages(texts[start : start + EMBED_BATCH]))
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)
        self.vectors = base64.b64encode(vectors.astype(np.float16).tobytes()).decode()
        self.vector_model = embedder.name
        self.vector_rows = len(vectors)

    def passage_vectors(self, model: str) -> np.ndarray | None:
        """The stored embeddings, if `model` made them: one row for each of the first passages
        (all of them, unless embedding ran out of time)."""
        if not self.vector_rows or self.vector_model != model:
            return None
        flat = np.frombuffer(base64.b64decode(self.vectors), dtype=np.float16)
        return flat.astype(np.float32).reshape(self.vector_rows, -1)


def extract(
    path: Path,
    kind: str,
    ext: str,
    person: str,
    language: str | None,
    transcriber: Transcriber,
    limits: Limits | None = None,
) -> Transcript:
    """Blocking: read or transcribe the file; raises MaterialError with the reason to show.

    `limits` (default: the settings') bound what the material may cost; every step after them
    is linear in the material's size."""
    limits = limits or Limits.from_settings()
    if path.stat().st_size == 0:
        raise MaterialError("the file is empty")
    pairs: list[tuple[str, str]] = []
    units: list[str] = []  # what passages are packed from, where not the text's paragraphs
    stats: dict[str, float] = {}
    senders: list[tuple[str, int]] = []
    if kind == "archive" or (kind == "text" and ext == "json"):
        with tempfile.TemporaryDirectory(prefix="bishop-export-") as tmp:
            opened = (
                telegram.from_zip(path, Path(tmp), limits)
                if kind == "archive"
                else telegram.from_json(path, limits)
            )
            with opened as (data, media):
                export = telegram.parse(
                    data,
                    person,
                    media,
                    lambda f, video: transcriber.transcribe_file(f, language, video=video),
                )
        pairs, senders = export.pairs, export.senders
        stats = {
            "person_messages": export.person_messages,
            "transcribed_notes": export.transcribed,
            "skipped_media": export.skipped_media,
        }
        text = "\n\n".join(answer for _, answer in pairs)
        # A chat's passages keep each answer with what it answered, and the day it was written
        # ("а когда это было?", "что он писал в мае?").
        units = [
            "\n".join([*([telegram.spoken_day(day, language)] if day else []), clean(q), clean(a)])
            for (q, a), day in zip(pairs, export.days, strict=True)
        ]
    elif kind == "text":
        text = documents.read_text_file(path, limits)
    elif kind == "document":
        read = documents.read_pdf if ext == "pdf" else documents.read_docx
        text = read(path, limits)
    elif kind in ("audio", "video"):
        text = transcriber.transcribe_file(path, language, video=kind == "video")
    else:
        raise MaterialError(f"unsupported material kind {kind!r}")
    documents.check_text_size(len(text), limits)
    text = clean(text)
    if not text:
        raise MaterialError("no text could be found in the file")
    passages = pack(units or text.split("\n\n"))
    stats.update({"characters": len(text), "passages": len(passages), "pairs": len(pairs)})
    return Transcript(
        text=text,
        passages=passages,
        pairs=[{"question": clean(q), "answer": clean(a)} for q, a in pairs],
        stats=stats,
        senders=senders,
    )


def title(filename: str) -> str:
    """A material's name as words: "letter_to_olga-2003.txt" -> "letter to olga 2003"."""
    return " ".join(PurePosixPath(filename).stem.replace("_", " ").replace("-", " ").split())


def extension(key: str) -> str:
    return PurePosixPath(key).suffix.lower().lstrip(".")
