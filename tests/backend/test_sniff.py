"""Type detection by content for the formats users upload."""

import io

import pytest
from bishop_backend.errors import UnsupportedMedia
from bishop_backend.services.sniff import detect

from tests.factories import wav_bytes

SAMPLES = [
    ("voice.wav", wav_bytes(0.1), "audio", "wav"),
    ("voice.mp3", b"ID3\x04\x00" + bytes(100), "audio", "mp3"),
    ("voice.mp3", b"\xff\xfb\x90\x64" + bytes(100), "audio", "mp3"),
    ("note.ogg", b"OggS\x00\x02" + bytes(22) + b"OpusHead" + bytes(20), "audio", "ogg"),
    ("note.opus", b"OggS\x00\x02" + bytes(22) + b"OpusHead" + bytes(20), "audio", "opus"),
    ("voice.flac", b"fLaC" + bytes(100), "audio", "flac"),
    ("voice.m4a", bytes(4) + b"ftypM4A " + bytes(100), "audio", "m4a"),
    ("clip.mp4", bytes(4) + b"ftypisom" + bytes(100), "video", "mp4"),
    ("clip.mov", bytes(4) + b"ftypqt  " + bytes(100), "video", "mov"),
    ("clip.webm", b"\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm" + bytes(50), "video", "webm"),
    ("clip.mkv", b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska" + bytes(50), "video", "mkv"),
    ("paper.pdf", b"%PDF-1.7\n" + bytes(50), "document", "pdf"),
    ("result.json", b'{"name": "chat", "messages": []}', "text", "json"),
    ("notes", "Текст без расширения".encode(), "text", "txt"),
    ("voice", wav_bytes(0.1), "audio", "wav"),
]


@pytest.mark.parametrize(
    ("name", "body", "kind", "ext"), SAMPLES, ids=[f"{s[0]}-{s[3]}" for s in SAMPLES]
)
def test_detects_by_content(name: str, body: bytes, kind: str, ext: str) -> None:
    found = detect(name, io.BytesIO(body))
    assert (found.kind, found.ext) == (kind, ext)


def test_text_cut_inside_a_multibyte_character_is_still_text() -> None:
    body = ("я" * 3000).encode()  # 6000 bytes: the 4096-byte sample ends mid-character or not
    assert detect("a.txt", io.BytesIO(body[:4095])).kind == "text"


@pytest.mark.parametrize("name", ["voice.wav", "voice.mp4", "doc.pdf"])
def test_extension_that_contradicts_content_is_refused(name: str) -> None:
    with pytest.raises(UnsupportedMedia):
        detect(name, io.BytesIO(b"plain text"))
