"""A Telegram export whose senders do not include the avatar's name: the ingest says who wrote
in it, and read again with the sender the user chose, it makes that person's answers."""

import json
from pathlib import Path
from typing import Any

import pytest
from bishop_text.ingest import MaterialError, extract
from bishop_text.ingest.isolated import IngestProcess, Material, Whisper
from bishop_text.ingest.limits import Limits
from bishop_text.settings import TextSettings

MESSAGES = [
    ("Ваня", "Привет! Как прошла лекция?"),
    ("Аня Петрова", "Отлично, студенты задавали много вопросов."),
    ("Ваня", "А про что?"),
    ("Аня Петрова", "Про законы Ньютона."),
    ("Аня Петрова", "И про инерцию."),
    ("Ваня", "Здорово."),
    ("Ваня", "Пока!"),
]


class NoSpeech:
    """A transcriber for exports without voice notes: never asked."""

    def transcribe_file(self, *args: Any, **kwargs: Any) -> str:
        raise AssertionError("nothing to transcribe")


def _export(tmp_path: Path) -> Path:
    messages = [
        {"id": n, "type": "message", "date": "2024-03-05T10:00:00", "from": who, "text": text}
        for n, (who, text) in enumerate(MESSAGES, 1)
    ]
    messages.append({"id": 99, "type": "service", "action": "pin_message"})
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"name": "Ваня", "messages": messages}, ensure_ascii=False))
    return path


def test_an_export_without_the_avatars_name_lists_its_senders(tmp_path: Path) -> None:
    path = _export(tmp_path)
    with pytest.raises(MaterialError, match="no messages from 'Анна'") as refused:
        extract(path, "text", "json", "Анна", "ru", NoSpeech())  # type: ignore[arg-type]
    # Most messages first, so that a group chat's few active people lead the list.
    assert refused.value.senders == [("Ваня", 4), ("Аня Петрова", 3)]


def test_read_again_with_the_chosen_sender_their_lines_are_the_answers(tmp_path: Path) -> None:
    path = _export(tmp_path)
    transcript = extract(path, "text", "json", "Аня Петрова", "ru", NoSpeech())  # type: ignore[arg-type]
    assert [p["answer"] for p in transcript.pairs] == [
        "Отлично, студенты задавали много вопросов.",
        "Про законы Ньютона. И про инерцию.",
    ]
    assert "Привет! Как прошла лекция?" not in transcript.text  # the other's lines are questions
    assert {name for name, _ in transcript.senders} == {"Аня Петрова", "Ваня"}


async def test_the_ingest_process_passes_the_senders_on(tmp_path: Path) -> None:
    path = _export(tmp_path)
    process = IngestProcess(Whisper("never-loaded", "cpu"), 60)
    limits = Limits.from_settings(TextSettings(_env_file=None))  # type: ignore[call-arg]
    try:
        wrong = Material(path, "text", "json", "Анна", "ru", limits, tmp_path / "a.json")
        with pytest.raises(MaterialError) as refused:
            await process.transcript(wrong)
        assert dict(refused.value.senders) == {"Аня Петрова": 3, "Ваня": 4}
        chosen = Material(path, "text", "json", "Аня Петрова", "ru", limits, tmp_path / "b.json")
        ingested = await process.transcript(chosen)
        assert ingested.stats["person_messages"] == 3
        assert dict(ingested.senders) == {"Аня Петрова": 3, "Ваня": 4}
        assert "Про законы Ньютона." in (tmp_path / "b.json").read_text()
    finally:
        await process.close()
