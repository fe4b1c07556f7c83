"""What an uploaded file really is, judged by its content, with the extension as a tie-breaker."""

import zipfile
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO

from bishop_backend.errors import UnsupportedMedia

TEXT_EXTENSIONS = {
    "txt": "text/plain",
    "md": "text/markdown",
    "json": "application/json",
    "srt": "text/plain",
    "vtt": "text/vtt",
}
KIND_EXTENSIONS = {
    "text": set(TEXT_EXTENSIONS),
    "document": {"pdf", "docx"},
    "archive": {"zip"},
    "audio": {"wav", "mp3", "ogg", "oga", "opus", "flac", "m4a"},
    "video": {"mp4", "mkv", "webm", "mov"},
}
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "zip": "application/zip",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "mov": "video/quicktime",
    **TEXT_EXTENSIONS,
}


IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class FileType:
    kind: str  # text, document, archive, audio, video: the `{file_type}` of the storage key
    ext: str
    content_type: str


def detect(filename: str, body: BinaryIO) -> FileType:
    """Detect a file's type from its first bytes; raises UnsupportedMedia with the reason."""
    claimed = PurePath(filename).suffix.lower().lstrip(".")
    body.seek(0)
    head = body.read(4096)
    body.seek(0)
    kind, ext = _from_content(head, claimed, body)
    if claimed and claimed != ext and claimed not in KIND_EXTENSIONS[kind]:
        claimed_kind = next((k for k, exts in KIND_EXTENSIONS.items() if claimed in exts), None)
        if claimed_kind is None:
            raise UnsupportedMedia(f"{filename}: .{claimed} files are not supported")
        raise UnsupportedMedia(
            f"{filename}: the content is {kind}, not {claimed_kind} as .{claimed} says"
        )
    if claimed in KIND_EXTENSIONS[kind]:
        ext = claimed
    return FileType(kind, ext, CONTENT_TYPES[ext])


def _from_content(head: bytes, claimed: str, body: BinaryIO) -> tuple[str, str]:
    if head.startswith(b"%PDF-"):
        return "document", "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(body)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio", "wav"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio", "mp3"
    if head.startswith(b"OggS"):
        return "audio", "opus" if b"OpusHead" in head else "ogg"
    if head.startswith(b"fLaC"):
        return "audio", "flac"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ") or claimed == "m4a":
            return "audio", "m4a"
        return "video", "mov" if brand == b"qt  " else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "webm" if b"webm" in head else "mkv"
    if _is_text(head):
        return "text", claimed if claimed in TEXT_EXTENSIONS else "txt"
    raise UnsupportedMedia(
        "unsupported file type: expected text, PDF, DOCX, audio, video or a Telegram export"
    )


def image_type(head: bytes, refusal: str) -> str:
    """A PNG, JPEG or WebP image's extension, from its first bytes; else `refusal`."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    raise UnsupportedMedia(refusal)


def _zip_kind(body: BinaryIO) -> tuple[str, str]:
    try:
        names = zipfile.ZipFile(body).namelist()
    except zipfile.BadZipFile:
        raise UnsupportedMedia("the archive is corrupt") from None
    finally:
        body.seek(0)
    if "word/document.xml" in names:
        return "document", "docx"
    if any(PurePath(n).name == "result.json" for n in names):
        return "archive", "zip"
    raise UnsupportedMedia("a zip archive must be a Telegram chat export (with result.json)")


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The sample may end inside a multi-byte character.
        if exc.start < len(head) - 3:
            return False
    return True
