"""Split reply text into sentences for synthesis, Russian and English alike.

A sentence ends at `.`, `!`, `?` or `…` (with any closing quotes or brackets) followed by space
and something that can start a sentence. A period after an abbreviation or an initial does not
end one, nor does one inside a number. Sentences longer than a model takes are cut at the last
comma, semicolon or dash before the limit, or at a space.
"""

import re

# Abbreviations after which a capital letter still continues the sentence.
_NEVER_FINAL = {
    # Russian
    "т.е",
    "т.к",
    "т.н",
    "напр",
    "см",
    "ср",
    "им",
    "ул",
    "пр",
    "д",
    "кв",
    "стр",
    "рис",
    "гл",
    "проф",
    "акад",
    "доц",
    "г-н",
    "г-жа",
    "тов",
    "св",
    "ок",
    "прим",
    "и.о",
    "т",
    "ст",
    # English
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "sr",
    "jr",
    "vs",
    "e.g",
    "i.e",
    "no",
    "fig",
    "approx",
    "inc",
    "ltd",
    "co",
    "mt",
    "gen",
    "col",
    "lt",
    "sgt",
    "rev",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
}
_BOUNDARY = re.compile(r"(?:[.!?…]+|\.{3})[\"'»”’)\]]*(?=\s+[\"'«“„(\[—–-]?\s*[A-ZА-ЯЁ0-9])")
_WORD_BEFORE = re.compile(r"([\w.\-]+)$")
_SOFT_BREAK = re.compile(r"[,;:]\s|\s[—–-]\s")


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Sentences of `text`, each at most `max_chars` long, whitespace normalised."""
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        single_period = match.group().rstrip("\"'»”’)]") == "."
        if single_period and _is_abbreviation(text[start : match.start()]):
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [piece for s in sentences if s for piece in _fit(s, max_chars)]


def _is_abbreviation(before: str) -> bool:
    word = _WORD_BEFORE.search(before)
    if word is None:
        return False
    token = word.group(1)
    if re.search(r"\d\s+г$", before):
        return False  # "в 2024 г." is a year and may end the sentence
    if len(token) == 1 and token.isalpha():
        return True  # an initial: "А. С. Пушкин", "J. R. R. Tolkien"
    return token.lower().strip(".") in _NEVER_FINAL


def _fit(sentence: str, max_chars: int) -> list[str]:
    pieces = []
    while len(sentence) > max_chars:
        window = sentence[: max_chars + 1]
        breaks = [m.end() for m in _SOFT_BREAK.finditer(window)]
        cut = breaks[-1] if breaks and breaks[-1] > max_chars // 3 else window.rfind(" ")
        if cut <= 0:
            cut = max_chars
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return pieces
