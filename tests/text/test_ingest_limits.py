"""Ingest that cannot hurt anyone else: linear-time cleaning and chunking, archives checked
before they are unpacked, and a material over a limit refused with the limit as its reason."""

import contextlib
import dataclasses
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bishop_text.ingest import Limits, MaterialError, Transcript, extract, telegram
from bishop_text.ingest.clean import chunks, clean
from bishop_text.ingest.media import Transcriber
from bishop_text.settings import TextSettings, get_settings

from tests.text.hostile import VOICE_EXPORT, docx

MiB = 1 << 20
# Never loaded: no material here reaches speech recognition.
NO_WHISPER = Transcriber("never-loaded")


def limits(**overrides: float) -> Limits:
    return dataclasses.replace(Limits.from_settings(TextSettings()), **overrides)


def ingest(path: Path, kind: str, ext: str, lim: Limits | None = None) -> Transcript:
    return extract(path, kind, ext, "Анна", "ru", NO_WHISPER, lim or limits())


# Linear time: the same function on n and 4n characters. Quadratic work would take 16 times
# as long; linear takes 4 (the bound of 8 leaves room for a noisy machine).


def _best_of(runs: int, f: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def _scaling(f: Callable[[str], object], make: Callable[[int], str], n: int) -> tuple[float, float]:
    f(make(n // 8))  # warm: Unicode tables, compiled expressions
    small, large = make(n), make(4 * n)
    return _best_of(3, lambda: f(small)), _best_of(3, lambda: f(large))


PATHOLOGICAL = {
    # What the old code took, n then 4n: 16 times as long, where it now takes 4.
    "emphasis never closed": (clean, lambda n: "_a " * (n // 3), 8_000),  # 0.22 s, 3.4 s
    "bold never closed": (clean, lambda n: "**a " * (n // 4), 8_000),  # 0.09 s, 1.4 s
    "emphasis closed on the next line": (clean, lambda n: "_a " * (n // 3) + "\nb_", 8_000),
    "link never closed": (clean, lambda n: "[" * n, 8_000),  # 0.23 s, 3.5 s
    "link address never closed": (clean, lambda n: "[a](" * (n // 4), 16_000),  # 0.04 s, 0.7 s
    "combining marks out of order": (clean, lambda n: "a" + "\u0301\u0316" * (n // 2), 10_000),
    # Linear before too, 200 steps a character; now one: a guard.
    "tags never closed": (clean, lambda n: "<" * n, 200_000),
    "run-on line": (chunks, lambda n: "word " * (n // 5), 1_000_000),  # 0.05 s, 0.55 s
    "one word, no spaces": (chunks, lambda n: "x" * n, 1_000_000),
}


@pytest.mark.parametrize("case", PATHOLOGICAL)
def test_cleaning_and_chunking_take_linear_time(case: str) -> None:
    f, make, n = PATHOLOGICAL[case]
    small, large = _scaling(f, make, n)
    if large / small >= 8:  # one retry: a neighbour on the machine may have stolen a slice
        small, large = _scaling(f, make, n)
    assert large / small < 8, f"{case}: {small:.4f}s for n, {large:.4f}s for 4n"
    assert large < 5.0, f"{case}: {large:.2f}s for {4 * n} characters"


def test_a_long_turn_of_telegram_messages_takes_linear_time() -> None:
    def export(n: int) -> str:
        messages = [{"type": "message", "from": "Иван", "text": "Как дела?"}] + [
            {"type": "message", "from": "Анна", "text": f"Сообщение {i}, одно из многих подряд."}
            for i in range(n)
        ]
        return json.dumps({"messages": messages}, ensure_ascii=False)

    def parse(data: str) -> object:
        return telegram.parse(data.encode(), "Анна", lambda _: None, lambda *_: "")

    small, large = _scaling(parse, export, 5_000)
    assert large / small < 8, f"{small:.3f}s for n messages, {large:.3f}s for 4n"


def test_emphasis_and_links_are_still_stripped_the_old_way() -> None:
    assert clean("**жирный** и _курсив_ и `код` и ~~зачёркнуто~~") == (
        "жирный и курсив и код и зачёркнуто"
    )
    assert clean("a **b\nc** d") == "a **b c** d"  # emphasis never spans a line break
    assert clean("[a [b](c) ![картинка](x.png) [без адреса]") == "a [b картинка [без адреса]"
    assert clean("a <<b>c") == "a c"  # the old tag expression's reading, kept
    assert clean("x" + "\u0301" * 40) == "x" + "\u0301" * 30  # a stream-safe run of marks


# Plain text: refused over the size limit, processed in bounded time under it.


def test_a_text_over_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "run-on.txt"
    path.write_text(("run on " * MiB)[: 3 * MiB])  # one line of 3 MiB
    start = time.perf_counter()
    with pytest.raises(MaterialError, match=r"the text is 3 MiB; the limit is 2 MiB per material"):
        ingest(path, "text", "txt", limits(text_bytes=2 * MiB))
    assert time.perf_counter() - start < 2.0


@pytest.fixture
def env_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_text_limit_comes_from_the_settings(
    env_limits: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_limits.setenv("BISHOP_INGEST_MAX_TEXT_MIB", "0.5")
    get_settings.cache_clear()
    path = tmp_path / "notes.md"
    path.write_text("a" * MiB)
    with pytest.raises(MaterialError, match="the limit is 512 KiB per material"):
        extract(path, "text", "md", "Анна", "ru", NO_WHISPER)  # no limits given: the settings'


def test_a_pathological_text_at_the_limit_is_processed_in_bounded_time(tmp_path: Path) -> None:
    """A one-line mix of every input the old code was quadratic on, just under the limit: in a
    child process, so that a regression fails on the timeout instead of hanging the suite."""
    path = tmp_path / "worst.txt"
    piece = "_a **b [c <d [e]( x" + "\u0301\u0316" * 50 + " word "
    path.write_text("".join(f"{piece}{i} " for i in range(2 * MiB // 240)))
    code = (
        "import sys, time; from pathlib import Path\n"
        "from bishop_text.ingest import extract\n"
        "from bishop_text.ingest.media import Transcriber\n"
        "start = time.perf_counter()\n"
        "t = extract(Path(sys.argv[1]), 'text', 'txt', 'Анна', None, Transcriber('x'))\n"
        "print(len(t.passages), time.perf_counter() - start)\n"
    )
    env = {**os.environ, "BISHOP_INGEST_MAX_TEXT_MIB": "2.5"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    passages, seconds = done.stdout.split()
    assert int(passages) > 100
    assert float(seconds) < 30, f"2 MiB took {seconds}s"


# Archives: checked by their central directory before a byte is unpacked.


def _zeros(archive: zipfile.ZipFile, name: str, mib: int) -> None:
    with archive.open(name, "w", force_zip64=True) as member:
        for _ in range(mib):
            member.write(bytes(MiB))


@contextlib.contextmanager
def _watched(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Iterator[dict[str, float]]:
    """Where the export would be unpacked (kept, to be measured) and the memory it took."""
    folder.mkdir()

    @contextlib.contextmanager
    def unpack_here(prefix: str = "") -> Iterator[str]:
        yield str(folder)

    monkeypatch.setattr(tempfile, "TemporaryDirectory", unpack_here)
    found: dict[str, float] = {}
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield found
    finally:
        found["seconds"] = time.perf_counter() - start
        found["peak_mib"] = tracemalloc.get_traced_memory()[1] / MiB
        tracemalloc.stop()
        found["written_mib"] = sum(f.stat().st_size for f in folder.rglob("*")) / MiB


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tmp_path / "export.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("ChatExport/result.json", VOICE_EXPORT)
        _zeros(z, "ChatExport/voice_messages/audio_1.ogg", 200)  # 200 MiB in under 1 MiB
    assert bomb.stat().st_size < MiB
    with (
        _watched(monkeypatch, tmp_path / "unpacked") as cost,
        pytest.raises(
            MaterialError,
            match=r"audio_1.ogg in the archive is compressed [\d,]+ to 1 \(a zip bomb\?\)",
        ),
    ):
        ingest(bomb, "archive", "zip")
    assert cost["seconds"] < 2.0 and cost["written_mib"] < 1 and cost["peak_mib"] < 16, cost


def test_a_huge_result_json_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    padded = tmp_path / "padded.zip"
    with zipfile.ZipFile(padded, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("result.json", VOICE_EXPORT[:-1] + os.urandom(3 * MiB).hex().encode() + b"}")
    with (
        _watched(monkeypatch, tmp_path / "unpacked") as cost,
        pytest.raises(
            MaterialError, match=r"result.json in the archive unpacks to 6 MiB; the limit"
        ),
    ):
        ingest(padded, "archive", "zip", limits(export_json_bytes=2 * MiB))
    assert cost["peak_mib"] < 2, cost  # refused before it was read

    alone = tmp_path / "result.json"
    alone.write_bytes(VOICE_EXPORT + b" " * (3 * MiB))
    with pytest.raises(MaterialError, match=r"result.json is 3 MiB; the limit is 2 MiB"):
        ingest(alone, "text", "json", limits(export_json_bytes=2 * MiB))


def test_an_archive_too_big_unpacked_or_with_too_many_files_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as z:
        z.writestr("result.json", VOICE_EXPORT)
        z.writestr("photos/1.jpg", os.urandom(3 * MiB))
    with pytest.raises(MaterialError, match=r"the archive unpacks to 3 MiB; the limit is 2 MiB"):
        ingest(big, "archive", "zip", limits(unpacked_bytes=2 * MiB))

    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as z:
        z.writestr("result.json", VOICE_EXPORT)
        for i in range(100):
            z.writestr(f"stickers/{i}.webp", b"x")
    with pytest.raises(MaterialError, match=r"the archive holds 101 files; the limit is 100"):
        ingest(many, "archive", "zip", limits(archive_files=100))


def test_only_the_notes_the_messages_name_are_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as z:
        z.writestr("ChatExport/result.json", VOICE_EXPORT)
        z.writestr("ChatExport/voice_messages/audio_1.ogg", b"OggS" + bytes(100))
        z.writestr("ChatExport/video_files/film.mp4", os.urandom(MiB))
        z.writestr("../escape.ogg", b"OggS")
    heard: list[Path] = []

    def transcribe(path: Path, language: str | None, *, video: bool) -> str:
        heard.append(path)
        assert path.read_bytes() == b"OggS" + bytes(100)
        return "голосом"

    monkeypatch.setattr(NO_WHISPER, "transcribe_file", transcribe)
    with _watched(monkeypatch, tmp_path / "unpacked") as cost:
        transcript = ingest(export, "archive", "zip")
    assert len(heard) == 1 and transcript.pairs[0]["answer"] == "Привет. голосом"
    assert cost["written_mib"] < 0.01, cost  # the film stayed in the archive


def _lying_zip(path: Path, name: str, data: bytes, declared: int) -> None:
    """A zip whose headers (local and central) say `name` unpacks to `declared` bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    raw = bytearray(path.read_bytes())
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)
    struct.pack_into("<I", raw, central + 24, declared)
    path.write_bytes(raw)


def test_a_header_that_lies_about_its_size_gets_nothing_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    liar = tmp_path / "liar.zip"
    _lying_zip(liar, "result.json", VOICE_EXPORT[:-1] + b" " * (100 * MiB) + b"}", 1024)
    with zipfile.ZipFile(liar) as z:
        assert z.getinfo("result.json").file_size == 1024  # the check sees 1 KiB, ratio ~1:1
    with (
        _watched(monkeypatch, tmp_path / "unpacked") as cost,
        pytest.raises(MaterialError, match="the archive is corrupt"),
    ):
        ingest(liar, "archive", "zip")
    assert cost["seconds"] < 2.0 and cost["peak_mib"] < 4, cost


def test_a_docx_bomb_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    bomb = docx(tmp_path / "bomb.docx", 100_000)  # 12 MB of XML in 75 KB: 7 s in python-docx
    assert bomb.stat().st_size < 200_000
    start = time.perf_counter()
    with pytest.raises(
        MaterialError, match=r"document.xml in the DOCX file is compressed [\d,]+ to 1"
    ):
        ingest(bomb, "document", "docx")
    assert time.perf_counter() - start < 1.0

    # Within the ratio, the XML still counts against the text limit.
    small = docx(tmp_path / "small.docx", 2_000)
    with pytest.raises(MaterialError, match=r"DOCX file's text unpacks to .* of XML; the limit"):
        ingest(small, "document", "docx", limits(text_bytes=100_000))
    assert ingest(small, "document", "docx").text.startswith("Импульс")


# PDF: pypdf caps each stream it inflates; the text and the time are capped here.


def _pdf(path: Path, pages: list[str], *, deflate: bool = False) -> Path:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    font = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for text in pages:
        content = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
        extra = b""
        if deflate:
            content, extra = zlib.compress(content), b" /Filter /FlateDecode"
        objects.append(
            b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(content), extra, content)
        )
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (len(objects), font)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(out)
    return path


def test_a_pdf_over_the_text_or_time_limit_is_refused(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "lecture.pdf", ["Page one of the lecture.", "Page two of it."] * 3)
    assert "Page two" in ingest(pdf, "document", "pdf").text
    with pytest.raises(
        MaterialError, match=r"the text is \d+ bytes; the limit is 40 bytes per material"
    ):
        ingest(pdf, "document", "pdf", limits(text_bytes=40))
    with pytest.raises(MaterialError, match=r"longer than the limit of 0 seconds"):
        ingest(pdf, "document", "pdf", limits(document_seconds=0))

    import pypdf

    packed = _pdf(tmp_path / "packed.pdf", ["A page."], deflate=True)
    with (
        pypdf.apply_configuration(zlib_maximum_output_length=10),
        pytest.raises(MaterialError, match="the PDF goes over a limit of the PDF reader"),
    ):
        ingest(packed, "document", "pdf")
