"""Hostile materials, and extracts that fail the way a child process can, for the ingest tests
and bench/ingest_isolation.py.

Imported by the ingest child too (the stand-ins are sent to it by name): stdlib only at the top.
"""

import asyncio
import json
import os
import signal
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from bishop_contracts import events as ev
from bishop_infra.storage import Storage

MiB = 1 << 20

_EVERY_SHAPE = "_a **b [c <d [e]( x" + "\u0301\u0316" * 50 + " word "
# One line each, about `n` characters: the shapes the old cleaning code was quadratic on, and
# the mix of them all.
RUN_ON_LINES = {
    "emphasis never closed": lambda n: "_a " * (n // 3),
    "link never closed": lambda n: "[" * n,
    "combining marks": lambda n: "a" + "\u0301\u0316" * (n // 2),
    "run-on words": lambda n: "word " * (n // 5),
    "every shape at once": lambda n: _EVERY_SHAPE * (n // len(_EVERY_SHAPE)),
}


def run_on_text(path: Path, shape: str, size: int) -> Path:
    path.write_text(RUN_ON_LINES[shape](size), encoding="utf-8")
    return path


def export(messages: list[dict[str, Any]]) -> bytes:
    return json.dumps({"name": "Анна", "messages": messages}, ensure_ascii=False).encode()


VOICE_EXPORT = export(
    [
        {"type": "message", "from": "Иван", "text": "Привет!"},
        {
            "type": "message",
            "from": "Анна",
            "text": "Привет.",
            "media_type": "voice_message",
            "file": "voice_messages/audio_1.ogg",
        },
    ]
)


def telegram_zip_bomb(path: Path, mib: int = 200) -> Path:
    """A chat export whose voice note is `mib` MiB of zeros, in under 1 MiB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("ChatExport/result.json", VOICE_EXPORT)
        with z.open("ChatExport/voice_messages/audio_1.ogg", "w", force_zip64=True) as member:
            for _ in range(mib):
                member.write(bytes(MiB))
    return path


def whitespace_export(path: Path, mib: int = 608) -> Path:
    """A chat export whose result.json is `mib` MiB of whitespace: 620 KB zipped, for 608."""
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z,
        z.open("result.json", "w", force_zip64=True) as member,
    ):
        member.write(VOICE_EXPORT[:-1])
        for _ in range(mib):
            member.write(b" " * MiB)
        member.write(b"}")
    return path


def docx(path: Path, paragraphs: int) -> Path:
    """A DOCX file of `paragraphs` equal paragraphs: 100,000 of them are a 12 MB bomb in 75 KB."""
    import docx as python_docx

    base = path.with_suffix(".base.docx")
    document = python_docx.Document()
    document.add_paragraph("x")
    document.save(base)
    with zipfile.ZipFile(base) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "word/document.xml":
                body = data.index(b"<w:body>") + len(b"<w:body>")
                p = "<w:p><w:r><w:t>Импульс — это произведение массы на скорость.</w:t></w:r></w:p>"
                data = data[:body] + p.encode() * paragraphs + data[body:]
            z.writestr(member, data)
    base.unlink()
    return path


# Stand-ins for bishop_text.ingest.extract, run in the ingest child (IngestProcess.extract).


def extract_that_hangs(*args: Any) -> Any:
    time.sleep(600)


def extract_that_spins(*args: Any) -> Any:
    """Ten minutes of pure-Python work, holding the GIL all along, as cleaning a text does."""
    end, count = time.monotonic() + 600, 0
    while time.monotonic() < end:
        count += 1


def extract_killed_like_by_the_oom_killer(*args: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


def extract_whose_decoder_gives_up(*args: Any) -> Any:
    raise OSError("the decoder gave up")


def extract_naming_its_transcriber(path: Path, *args: Any) -> Any:
    """A transcript naming the child's speech model object: the same one for each material."""
    from bishop_text.ingest import Transcript

    transcriber = args[4]
    return Transcript(
        text="", passages=[], stats={"transcriber": id(transcriber), "pid": os.getpid()}
    )


async def upload(storage: Storage, prefix: str, path: Path, kind: str) -> ev.MaterialUploaded:
    """Put `path` under the avatar `prefix` in storage, as the backend does with an upload."""
    key = f"{prefix}{kind}/{uuid.uuid4()}{path.suffix}"
    data = await asyncio.to_thread(path.read_bytes)
    await storage.put_bytes(key, data, "application/octet-stream")
    return ev.MaterialUploaded(
        avatar_id=uuid.UUID(prefix.split("/")[3]),
        material_id=uuid.uuid4(),
        type="basic",
        kind=kind,  # type: ignore[arg-type]
        url=key,
        filename=path.name,
        person="Анна",
    )
