"""Materials to transcripts: documents, speech in audio and video, Telegram exports, and the
reasons a material cannot be used."""

import json
import zipfile
from pathlib import Path

import pytest
from bishop_text.ingest import MaterialError, extract
from bishop_text.ingest.clean import chunks, clean
from bishop_text.ingest.media import Transcriber
from bishop_text.models import demo_whisper

from tests.sound import media


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> Transcriber:
    """A tiny whisper built from ModelDimensions (random weights): the real path, no download."""
    return Transcriber(str(demo_whisper(tmp_path_factory.mktemp("whisper"))), max_tokens=16)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return media.speech_wav(tmp_path_factory.mktemp("speech") / "speech.wav")


def test_clean_removes_markup_and_normalises() -> None:
    text = (
        "# Заголовок\n\n**Жирный** текст с [ссылкой](http://x.y) и <b>тегом</b>.\n"
        "Ｆｕｌｌwidth https://a.b/c\n\n\n- пункт"
    )
    assert clean(text) == "Заголовок\n\nЖирный текст с ссылкой и тегом . Fullwidth\n\nпункт"


def test_chunks_cut_at_sentence_ends_and_drop_duplicates() -> None:
    text = "Первое предложение. Второе предложение! " * 3 + "Третье?"
    pieces = chunks(text, max_chars=45)
    assert all(len(p) <= 45 for p in pieces)
    assert all(p.endswith((".", "!", "?")) for p in pieces)
    assert len(pieces) == len(set(pieces))


@pytest.mark.parametrize("make", ["wav", "mp4"])
def test_speech_in_audio_and_video_is_transcribed(
    transcriber: Transcriber, speech: Path, tmp_path: Path, make: str
) -> None:
    source = speech if make == "wav" else media.video(tmp_path / "talk.mp4", speech)
    kind = "audio" if make == "wav" else "video"
    try:
        transcript = extract(source, kind, make, "Анна", "ru", transcriber)
    except MaterialError as exc:
        # Random weights may hear nothing; the pipeline still ran to the end.
        assert str(exc) == "no text could be found in the file"
        return
    assert isinstance(transcript.text, str) and transcript.passages
    assert transcript.stats["characters"] == len(transcript.text)


def test_documents(transcriber: Transcriber, tmp_path: Path) -> None:
    import docx
    from pypdf import PdfWriter

    document = docx.Document()
    document.add_paragraph("Импульс — это произведение массы на скорость.")
    document.add_paragraph("Энергия сохраняется.")
    document.save(tmp_path / "notes.docx")
    transcript = extract(tmp_path / "notes.docx", "document", "docx", "Анна", "ru", transcriber)
    assert (
        transcript.text == "Импульс — это произведение массы на скорость.\n\nЭнергия сохраняется."
    )

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.write(tmp_path / "blank.pdf")
    with pytest.raises(MaterialError, match="no text could be found"):
        extract(tmp_path / "blank.pdf", "document", "pdf", "Анна", "ru", transcriber)

    (tmp_path / "lecture.srt").write_text(
        "1\n00:00:01,000 --> 00:00:02,000\nПривет, студенты.\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\nНачнём.\n"
    )
    assert (
        extract(tmp_path / "lecture.srt", "text", "srt", "Анна", "ru", transcriber).text
        == "Привет, студенты.\n\nНачнём."
    )
    (tmp_path / "utf16.txt").write_bytes("Текст в UTF-16.".encode("utf-16"))
    assert (
        extract(tmp_path / "utf16.txt", "text", "txt", "Анна", "ru", transcriber).text
        == "Текст в UTF-16."
    )
    (tmp_path / "cp1251.txt").write_bytes("Текст в кодировке Windows.".encode("cp1251"))
    assert (
        extract(tmp_path / "cp1251.txt", "text", "txt", "Анна", "ru", transcriber).text
        == "Текст в кодировке Windows."
    )


def _export(messages: list[dict]) -> bytes:
    return json.dumps(
        {"name": "Анна", "type": "personal_chat", "id": 1, "messages": messages}, ensure_ascii=False
    ).encode()


def _message(n: int, sender: str, text: object = "", **extra: object) -> dict:
    return {
        "id": n,
        "type": "message",
        "date": "2024-01-01T10:00:00",
        "from": sender,
        "from_id": f"user{sender}",
        "text": text,
        **extra,
    }


def test_telegram_export_with_a_voice_message_becomes_pairs(
    transcriber: Transcriber, speech: Path, tmp_path: Path
) -> None:
    voice = media.encode(speech, tmp_path / "audio_1.ogg")
    result = _export(
        [
            _message(1, "Иван", "Привет! Как дела?"),
            _message(2, "Анна", "Привет, всё хорошо."),
            _message(3, "Анна", ["Работаю над ", {"type": "bold", "text": "лекцией"}, "."]),
            {"id": 4, "type": "service", "action": "pin_message"},
            _message(5, "Иван", "", media_type="voice_message", file="voice_messages/audio_1.ogg"),
            _message(6, "Анна", "Отвечаю на голосовое."),
            _message(7, "Иван", "Спасибо!"),
        ]
    )
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ChatExport_2024/result.json", result)
        z.write(voice, "ChatExport_2024/voice_messages/audio_1.ogg")
    transcript = extract(archive, "archive", "zip", "Анна", "ru", transcriber)
    assert transcript.stats["transcribed_notes"] == 1
    assert transcript.stats["person_messages"] == 3
    assert [p["answer"] for p in transcript.pairs] == [
        "Привет, всё хорошо. Работаю над лекцией.",
        "Отвечаю на голосовое.",
    ]
    assert transcript.pairs[0]["question"] == "Привет! Как дела?"

    # result.json alone: the voice note's file is not there, so it is skipped, not failed.
    (tmp_path / "result.json").write_bytes(result)
    alone = extract(tmp_path / "result.json", "text", "json", "Анна", "ru", transcriber)
    assert alone.stats["skipped_media"] == 1
    # Without its text, the voice note is no question: the person's next message joins her turn.
    assert [p["answer"] for p in alone.pairs] == [
        "Привет, всё хорошо. Работаю над лекцией. Отвечаю на голосовое."
    ]


def test_a_chats_passages_carry_the_day_each_answer_was_written(
    transcriber: Transcriber, tmp_path: Path
) -> None:
    result = _export(
        [
            _message(1, "Иван", "Когда сошёл лёд?"),
            _message(2, "Анна", "Сегодня ночью, с грохотом.", date="2021-04-16T07:30:00"),
            _message(3, "Иван", "А лодку когда на воду?"),
            _message(4, "Анна", "Через неделю.", date="2021-05-09T12:00:00"),
            _message(5, "Иван", "Как пчёлы?", date="not a date"),
            _message(6, "Анна", "Живы все семь семей.", date="not a date"),
        ]
    )
    (tmp_path / "result.json").write_bytes(result)
    russian = extract(tmp_path / "result.json", "text", "json", "Анна", "ru", transcriber)
    assert russian.passages[0].splitlines() == [
        "16 апреля 2021",
        "Когда сошёл лёд? Сегодня ночью, с грохотом.",
        "9 мая 2021",
        "А лодку когда на воду? Через неделю.",
        "Как пчёлы? Живы все семь семей.",  # no day where none is known
    ]
    # The dataset's pairs are what was said, without the days.
    assert russian.pairs[0]["answer"] == "Сегодня ночью, с грохотом."
    english = extract(tmp_path / "result.json", "text", "json", "Анна", "en", transcriber)
    assert english.passages[0].startswith("2021-04-16\n")


@pytest.mark.parametrize(
    ("name", "kind", "ext", "body", "reason"),
    [
        ("empty.txt", "text", "txt", b"", "the file is empty"),
        ("blank.md", "text", "md", b"  \n# \n", "no text could be found"),
        (
            "broken.docx",
            "document",
            "docx",
            b"PK\x03\x04 not really a docx",
            "DOCX file is corrupt",
        ),
        ("broken.pdf", "document", "pdf", b"%PDF-1.7\nbroken", "PDF file is corrupt"),
        ("broken.wav", "audio", "wav", b"RIFF\x10\x00\x00\x00WAVEgarbage", "could not be decoded"),
        ("broken.zip", "archive", "zip", b"PK\x03\x04garbage", "archive is corrupt"),
        ("other.json", "text", "json", b'{"a": 1}', "not a Telegram chat export"),
        ("exe.bin", "binary", "bin", b"MZ\x00", "unsupported material kind"),
        (
            "nobody.json",
            "text",
            "json",
            _export([_message(1, "Иван", "Привет")]),
            "no messages from 'Анна'",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else None,
)
def test_unusable_materials_say_why(
    transcriber: Transcriber,
    tmp_path: Path,
    name: str,
    kind: str,
    ext: str,
    body: bytes,
    reason: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(MaterialError, match=reason):
        extract(path, kind, ext, "Анна", "ru", transcriber)


def test_video_without_audio(transcriber: Transcriber, tmp_path: Path) -> None:
    with pytest.raises(MaterialError, match="no audio track"):
        extract(media.video(tmp_path / "mute.mp4", None), "video", "mp4", "Анна", "ru", transcriber)
