"""A material's text as passages for retrieval: whole paragraphs packed up to a size, so that
a passage carries enough of what the person said to be found and to answer.

A paragraph is never a passage of its own just because it ends: a heading, an interviewer's
question or a letter's signature on its own won every short query (53 of 235 top passages
were under 100 characters). A short paragraph that leads into the next one (a heading, a
question) goes with what follows it; a short last one (a signature) with what came before."""

import re

from bishop_text.ingest.clean import chunks, dedupe

MAX_CHARS = 800
MIN_CHARS = 200
# A passage may grow past MAX_CHARS by this much rather than leave a piece under MIN_CHARS.
SLACK = 1.5
_LEADS_IN = re.compile(r"(?:[?:—–-]|[^.!?…»\"')\]])\s*$")


def passages(
    paragraphs: list[str], max_chars: int = MAX_CHARS, min_chars: int = MIN_CHARS
) -> list[str]:
    """`paragraphs` (of one material, in order) packed into passages of about `max_chars`."""
    pieces = [piece for paragraph in paragraphs for piece in chunks(paragraph, max_chars)]
    packed: list[list[str]] = []
    current: list[str] = []
    for piece in pieces:
        if current and _size([*current, piece]) > max_chars and _size(current) >= min_chars:
            # What leads into this piece moves on with it, unless that would leave too little.
            carried = []
            while len(current) > 1 and _leads_in(current[-1]) and _size(current[:-1]) >= min_chars:
                carried.insert(0, current.pop())
            packed.append(current)
            current = carried
        current.append(piece)
    if current:
        if (
            packed
            and _size(current) < min_chars
            and _size(packed[-1] + current) <= (max_chars * SLACK)
        ):
            packed[-1] += current  # a closing line or signature stays with its letter
        else:
            packed.append(current)
    return dedupe(["\n".join(group) for group in packed])


def _size(group: list[str]) -> int:
    return sum(len(p) for p in group) + max(len(group) - 1, 0)


def _leads_in(paragraph: str) -> bool:
    """A short paragraph that introduces the next: a heading, a question, a "Вопрос:" line."""
    return len(paragraph) < MIN_CHARS and bool(_LEADS_IN.search(paragraph))
