"""Zip archives (Telegram exports, DOCX documents) opened within limits: the central directory
is checked before a byte is unpacked, and members are read with a byte cap, so a zip bomb or a
header that lies about its sizes costs neither disk nor memory."""

import zipfile
import zlib
from pathlib import Path, PurePosixPath

from bishop_text.ingest.errors import MaterialError
from bishop_text.ingest.limits import Limits, MiB, size

# A member this small cannot hurt, whatever its ratio (an empty or repetitive XML part).
_SMALL_MEMBER = 1 * MiB
_CHUNK = 1 * MiB
# What zipfile raises on a broken member, found only when it is read.
_BROKEN = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def open_zip(path: Path, limits: Limits, what: str = "archive") -> zipfile.ZipFile:
    """The archive, its file count and unpacked sizes checked; `what` names it in reasons."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise MaterialError(f"the {what} is corrupt") from None
    try:
        check(archive, limits, what)
    except MaterialError:
        archive.close()
        raise
    return archive


def check(archive: zipfile.ZipFile, limits: Limits, what: str = "archive") -> None:
    """Refuse by the central directory: too many files, too big unpacked, too compressed."""
    members = archive.infolist()
    if len(members) > limits.archive_files:
        raise MaterialError(
            f"the {what} holds {len(members):,} files; the limit is {limits.archive_files:,}"
        )
    unpacked = sum(m.file_size for m in members)
    if unpacked > limits.unpacked_bytes:
        raise MaterialError(
            f"the {what} unpacks to {size(unpacked)}; the limit is {size(limits.unpacked_bytes)}"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _SMALL_MEMBER and ratio > limits.compression_ratio:
            raise MaterialError(
                f"{PurePosixPath(member.filename).name} in the {what} is compressed "
                f"{ratio:,.0f} to 1 (a zip bomb?); "
                f"the limit is {limits.compression_ratio:,.0f} to 1"
            )


def read(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int, what: str) -> bytes:
    """A member's bytes, never more than its declared size; refused if that is over `limit`."""
    _fits(member, limit, what)
    try:
        with archive.open(member) as stream:
            data = stream.read(member.file_size + 1)
    except _BROKEN:
        raise MaterialError(f"the {what} is corrupt") from None
    if len(data) > member.file_size:
        raise _lying(what)
    return data


def unpack(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, limit: int, what: str
) -> Path:
    """A member copied to `target` in chunks, stopped at its declared size (at most `limit`)."""
    _fits(member, limit, what)
    written = 0
    try:
        with archive.open(member) as stream, target.open("wb") as out:
            while chunk := stream.read(_CHUNK):
                written += len(chunk)
                if written > member.file_size:
                    raise _lying(what)
                out.write(chunk)
    except _BROKEN:
        target.unlink(missing_ok=True)
        raise MaterialError(f"the {what} is corrupt") from None
    except MaterialError:
        target.unlink(missing_ok=True)
        raise
    return target


def _fits(member: zipfile.ZipInfo, limit: int, what: str) -> None:
    if member.file_size > limit:
        raise MaterialError(
            f"{PurePosixPath(member.filename).name} in the {what} unpacks to "
            f"{size(member.file_size)}; the limit is {size(limit)}"
        )


def _lying(what: str) -> MaterialError:
    # zipfile itself stops at the declared size; this guards the guard.
    return MaterialError(f"the {what} is corrupt (a file is larger than its header says)")
