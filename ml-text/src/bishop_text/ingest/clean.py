"""Text cleaning and chunking (thesis §6.4): markup out, NFKC, chunks cut at sentence ends,
duplicates dropped."""

import hashlib
import re
import unicodedata

_HTML_TAG = re.compile(r"<[^>]{1,200}>")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"(^|\s)(#{1,6}\s+|>\s+|[-*+]\s+|\d+\.\s+)", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_URL = re.compile(r"https?://\S+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»”)]*\s+")
_SPACES = re.compile(r"[ \t\u00a0]+")


def clean(text: str) -> str:
    """Plain text: markup removed, Unicode NFKC, whitespace normalised, paragraphs kept."""
    text = unicodedata.normalize("NFKC", text)
    text = _HTML_TAG.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_EMPHASIS.sub(r"\2", text)
    text = _MD_MARKS.sub(r"\1", text)
    text = _URL.sub("", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    paragraphs, current = [], []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def chunks(text: str, max_chars: int = 800) -> list[str]:
    """Passages of at most `max_chars`, cut at sentence ends (or spaces for run-on text)."""
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        current = ""
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > max_chars:
                cut = sentence.rfind(" ", 0, max_chars)
                cut = cut if cut > 0 else max_chars
                pieces.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if current and len(current) + 1 + len(sentence) > max_chars:
                pieces.append(current)
                current = sentence
            else:
                current = f"{current} {sentence}".strip()
        if current:
            pieces.append(current)
    return dedupe([p for p in pieces if p])


def dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for item in items:
        key = hashlib.sha1(" ".join(item.casefold().split()).encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique
