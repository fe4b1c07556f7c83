"""Telegram Desktop chat exports: the person's messages become answers to what others said
before them; voice and video notes are transcribed."""

import itertools
import json
import posixpath
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePosixPath

from bishop_text.ingest import archive
from bishop_text.ingest.clean import clean
from bishop_text.ingest.errors import MaterialError
from bishop_text.ingest.limits import Limits, size

SPOKEN = {"voice_message", "video_message"}
MAX_SENDERS = 50  # a group chat's most active; the event carries no more


@dataclass
class Export:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    # When each pair's answer was written (its first message's day), None where unknown.
    days: list[date | None] = field(default_factory=list)
    person_messages: int = 0
    transcribed: int = 0
    skipped_media: int = 0
    # Who wrote in the chat and how many messages each, most first.
    senders: list[tuple[str, int]] = field(default_factory=list)


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
        if not isinstance(messages, list):
            raise TypeError
    # ValueError: also an integer of more digits than Python converts; RecursionError: nesting.
    except (ValueError, RecursionError, KeyError, TypeError):
        raise MaterialError(
            "this is not a Telegram chat export (no messages in result.json)"
        ) from None
    export = Export()
    turns: list[tuple[bool, list[str], date | None]] = []  # (by the person, messages, day)
    target = person.casefold().strip()
    written: Counter[str] = Counter()
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
        sender = str(message.get("from") or "").strip()
        written[sender] += 1
        by_person = sender.casefold() == target
        export.person_messages += by_person
        if turns and turns[-1][0] == by_person:
            turns[-1][1].append(text)  # joined once at the end: a long turn is no quadratic copy
        else:
            turns.append((by_person, [text], _day(message.get("date"))))
    export.senders = [(name, count) for name, count in written.most_common(MAX_SENDERS) if name]
    if export.person_messages == 0:
        raise MaterialError(
            f"the export has no messages from {person!r}: choose who the avatar is",
            senders=export.senders,
        )
    answered = [
        (question, answer)
        for question, answer in itertools.pairwise(turns)
        if answer[0] and not question[0]
    ]
    export.pairs = [("\n".join(q[1]), "\n".join(a[1])) for q, a in answered]
    export.days = [a[2] for _, a in answered]
    return export


_RUSSIAN_MONTHS = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)  # fmt: skip


def spoken_day(day: date, language: str | None) -> str:
    """A day as the avatar's people write it: "2 апреля 2021" in Russian, ISO otherwise."""
    if language == "ru":
        return f"{day.day} {_RUSSIAN_MONTHS[day.month - 1]} {day.year}"
    return day.isoformat()


def _day(value: object) -> date | None:
    """The day of a message's "date" ("2021-04-02T19:12:00"), if it is one."""
    try:
        return datetime.fromisoformat(str(value)).date()
    except ValueError:
        return None


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


Media = Callable[[str], Path | None]


@contextmanager
def from_json(path: Path, limits: Limits) -> Iterator[tuple[bytes, Media]]:
    """result.json uploaded alone: its bytes, and no media."""
    _fits(path.stat().st_size, limits)
    yield path.read_bytes(), lambda _: None


@contextmanager
def from_zip(path: Path, unpack_to: Path, limits: Limits) -> Iterator[tuple[bytes, Media]]:
    """result.json of a zipped export, and a finder that unpacks an attached file when asked.

    Nothing is unpacked up front: only the voice and video notes the messages name reach the
    disk, each within the sizes the archive's central directory was checked for."""
    with archive.open_zip(path, limits) as export:
        members = {
            posixpath.normpath(m.filename): m
            for m in export.infolist()
            if not m.is_dir() and _safe(m.filename)
        }
        result = next(
            (n for n in export.namelist() if PurePosixPath(n).name == "result.json"), None
        )
        if result is None:
            raise MaterialError("the archive has no result.json: export the chat as JSON")
        data = archive.read(export, export.getinfo(result), limits.export_json_bytes, "archive")
        root = PurePosixPath(result).parent
        unpacked: dict[str, Path] = {}

        def find(relative: str) -> Path | None:
            name = posixpath.normpath(posixpath.join(root, relative)) if relative else ""
            member = members.get(name)
            if member is None:
                return None
            if name not in unpacked:
                suffix = PurePosixPath(name).suffix  # kept for the decoders; the name is ours
                suffix = suffix if suffix[1:].isalnum() else ""
                target = unpack_to / f"{len(unpacked)}{suffix}"
                unpacked[name] = archive.unpack(
                    export, member, target, limits.unpacked_bytes, "archive"
                )
            return unpacked[name]

        yield data, find


def _fits(json_bytes: int, limits: Limits) -> None:
    if json_bytes > limits.export_json_bytes:
        raise MaterialError(
            f"result.json is {size(json_bytes)}; the limit is {size(limits.export_json_bytes)}"
        )


def _safe(name: str) -> bool:
    return not name.startswith("/") and ".." not in PurePosixPath(name).parts
