"""Telegram Desktop chat exports: the person's messages become answers to what others said
before them; voice and video notes are transcribed."""

import itertools
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from bishop_text.ingest.clean import clean
from bishop_text.ingest.errors import MaterialError

SPOKEN = {"voice_message", "video_message"}


@dataclass
class Export:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    person_messages: int = 0
    transcribed: int = 0
    skipped_media: int = 0


def parse(
    result_json: bytes,
    person: str,
    media: Callable[[str], Path | None],
    transcribe: Callable[[Path, bool], str],
) -> Export:
    """Pairs from an export; `media(relative_path)` finds an attached file, if it was exported."""
    try:
        data = json.loads(result_json)
        messages = data["messages"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise MaterialError(
            "this is not a Telegram chat export (no messages in result.json)"
        ) from None
    export = Export()
    turns: list[tuple[bool, str]] = []  # (said by the person, text)
    target = person.casefold().strip()
    for message in messages:
        if not isinstance(message, dict) or message.get("type") != "message":
            continue
        text = _text(message.get("text", ""))
        if message.get("media_type") in SPOKEN:
            path = media(str(message.get("file", "")))
            if path is None:
                export.skipped_media += 1
            else:
                spoken = transcribe(path, message.get("media_type") == "video_message")
                export.transcribed += 1
                text = f"{text} {spoken}".strip()
        text = clean(text)
        if not text:
            continue
        by_person = str(message.get("from") or "").casefold().strip() == target
        export.person_messages += by_person
        if turns and turns[-1][0] == by_person:
            turns[-1] = (by_person, f"{turns[-1][1]}\n{text}")
        else:
            turns.append((by_person, text))
    if export.person_messages == 0:
        raise MaterialError(f"the export has no messages from {person!r} (the avatar's name)")
    export.pairs = [
        (question, answer)
        for (asked_by_person, question), (answered_by_person, answer) in itertools.pairwise(turns)
        if answered_by_person and not asked_by_person
    ]
    return export


def _text(value: object) -> str:
    """Telegram stores formatted text as a list of strings and entity objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [
            p if isinstance(p, str) else str(p.get("text", ""))
            for p in value
            if isinstance(p, str | dict)
        ]
        return "".join(parts)
    return ""


def from_zip(path: Path, unpack_to: Path) -> tuple[bytes, Callable[[str], Path | None]]:
    """result.json of a zipped export, and a finder for its media files."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise MaterialError("the archive is corrupt") from None
    with archive:
        names = archive.namelist()
        result = next((n for n in names if PurePosixPath(n).name == "result.json"), None)
        if result is None:
            raise MaterialError("the archive has no result.json: export the chat as JSON")
        root = PurePosixPath(result).parent
        archive.extractall(unpack_to, members=[n for n in names if _safe(n)])
        data = archive.read(result)

    def find(relative: str) -> Path | None:
        candidate = unpack_to / root / relative
        inside = candidate.resolve().is_relative_to(unpack_to.resolve())
        return candidate if relative and inside and candidate.is_file() else None

    return data, find


def _safe(name: str) -> bool:
    return not name.startswith("/") and ".." not in PurePosixPath(name).parts
