"""Text out of documents: txt, md, srt/vtt, docx, pdf."""

import re
from pathlib import Path

from bishop_text.ingest.errors import MaterialError

_SUBTITLE_NOISE = re.compile(r"^(\d+|WEBVTT.*|\d{2}:\d{2}[:.,\d]*\s*-->\s*[\d:.,]+.*)$")


def read_text_file(path: Path) -> str:
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


def read_docx(path: Path) -> str:
    import docx

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises several types for a broken package
        raise MaterialError("the DOCX file is corrupt") from exc
    return "\n\n".join(p.text for p in document.paragraphs)


def read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise MaterialError("the PDF file is corrupt") from exc
    return "\n\n".join(pages)
