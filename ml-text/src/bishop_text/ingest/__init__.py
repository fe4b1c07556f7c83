"""A material, whatever its kind, to a transcript: clean text, passages and dialogue pairs."""

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from bishop_text.ingest import documents, telegram
from bishop_text.ingest.clean import chunks, clean
from bishop_text.ingest.errors import MaterialError
from bishop_text.ingest.limits import Limits
from bishop_text.ingest.media import Transcriber

__all__ = ["Limits", "MaterialError", "Transcript", "extract"]


@dataclass
class Transcript:
    text: str
    passages: list[str]
    pairs: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Transcript":
        return cls(**json.loads(data))


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
    stats: dict[str, float] = {}
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
        pairs = export.pairs
        stats = {
            "person_messages": export.person_messages,
            "transcribed_notes": export.transcribed,
            "skipped_media": export.skipped_media,
        }
        text = "\n\n".join(answer for _, answer in pairs)
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
    passages = chunks(text)
    stats.update({"characters": len(text), "passages": len(passages), "pairs": len(pairs)})
    return Transcript(
        text=text,
        passages=passages,
        pairs=[{"question": clean(q), "answer": clean(a)} for q, a in pairs],
        stats=stats,
    )


def extension(key: str) -> str:
    return PurePosixPath(key).suffix.lower().lstrip(".")
