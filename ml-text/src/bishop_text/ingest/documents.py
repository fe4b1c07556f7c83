"""Text out of documents: txt, md, srt/vtt, docx, pdf."""

import re
import time
from pathlib import Path

from bishop_text.ingest import archive
from bishop_text.ingest.errors import MaterialError
from bishop_text.ingest.limits import Limits, duration, size

_SUBTITLE_NOISE = re.compile(r"^(\d+|WEBVTT.*|\d{2}:\d{2}[:.,\d]*\s*-->\s*[\d:.,]+.*)$")


def check_text_size(characters: int, limits: Limits) -> None:
    """Refuse a text longer than the limit: past it, cleaning and chunking take too long."""
    if characters > limits.text_bytes:
        raise MaterialError(
            f"the text is {size(characters)}; the limit is {size(limits.text_bytes)} per material"
        )


def read_text_file(path: Path, limits: Limits) -> str:
    check_text_size(path.stat().st_size, limits)
    data = path.read_bytes()
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    for encoding in ("utf-16",) if utf16 else ("utf-8-sig", "cp1251"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise MaterialError("the text is not in a known encoding (UTF-8, UTF-16, Windows-1251)")
    if path.suffix.lower() in (".srt", ".vtt"):
        text = "\n".join(
            line for line in text.splitlines() if not _SUBTITLE_NOISE.match(line.strip())
        )
    return text


def read_docx(path: Path, limits: Limits) -> str:
    import docx

    # python-docx reads every part into memory and its XML into a tree (about ten times the
    # XML's size): the archive's limits, and the text limit for the XML, come first.
    with archive.open_zip(path, limits, "DOCX file") as package:
        markup = sum(
            m.file_size for m in package.infolist() if m.filename.endswith((".xml", ".rels"))
        )
    if markup > limits.text_bytes:
        raise MaterialError(
            f"the DOCX file's text unpacks to {size(markup)} of XML; "
            f"the limit is {size(limits.text_bytes)} per material"
        )
    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises several types for a broken package
        raise MaterialError("the DOCX file is corrupt") from exc
    return "\n\n".join(p.text for p in document.paragraphs)


def read_pdf(path: Path, limits: Limits) -> str:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError

    # pypdf caps each stream it inflates; the pages, their text and the time are ours to cap.
    deadline = time.monotonic() + limits.document_seconds
    pages: list[str] = []
    characters = 0
    try:
        reader = PdfReader(str(path))
        for page in reader.pages:
            if time.monotonic() > deadline:
                raise MaterialError(
                    f"reading the PDF took longer than the limit of "
                    f"{duration(limits.document_seconds)} (stopped after {len(pages)} pages)"
                )
            pages.append(page.extract_text() or "")
            characters += len(pages[-1])
            check_text_size(characters, limits)
    except MaterialError:
        raise
    except LimitReachedError as exc:
        raise MaterialError(f"the PDF goes over a limit of the PDF reader: {exc}") from exc
    except (PdfReadError, ValueError, KeyError) as exc:
        raise MaterialError("the PDF file is corrupt") from exc
    return "\n\n".join(pages)
