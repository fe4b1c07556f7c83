"""Text cleaning and chunking (thesis §6.4): markup out, NFKC, chunks cut at sentence ends,
duplicates dropped.

Materials are untrusted, so every pass is linear in the text's length: no expression may scan
the same stretch again from each of many starting points (`"_a " * 20000` once took 20 s)."""

import functools
import hashlib
import re
import sys
import unicodedata

# A tag: "<", 1-200 characters other than ">", then ">". Read forwards, every "<" of a long run
# scans 200 characters; read backwards (on the reversed text) only each ">" scans, and the
# greedy match still reaches the "<" a forward scan would have started at.
_HTML_TAG_REVERSED = re.compile(r">[^>]{1,200}<")
# A link's text runs to the first "]", its address to the first ")". Where a link fails, the
# second branch takes (and puts back) the stretch every later "[" in it would fail on too.
_MD_LINK = re.compile(r"!?\[([^\]]*+)\]\([^)]*+\)|(\[[^\]]*+(?:\]\([^)]*+)?)")
_MD_MARKS = re.compile(r"(^|\s)(?:#{1,6}\s+|>\s+|[-*+]\s+|\d+\.\s+)", re.MULTILINE)
_URL = re.compile(r"https?://\S+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»”)]*\s+")
# Runs of spaces, tabs and no-break spaces become one space (a lone space is left as it is).
_SPACES = re.compile(r"[\t\u00a0][ \t\u00a0]*+| [ \t\u00a0]++")
# Line breaks left after control characters are gone (str.splitlines' others are all controls).
_LINE_SPACE = r"[^\S\n\u2028\u2029]"
_BREAK = r"[\n\u2028\u2029]"
# A run of white space with a blank line in it parts paragraphs; with one line break, joins
# lines. Both start only where the run does (not after white space): each run is scanned once.
_PARAGRAPH_GAP = re.compile(rf"(?<!\s){_LINE_SPACE}*+{_BREAK}{_LINE_SPACE}*+{_BREAK}\s*+")
_LINE_GAP = re.compile(rf"(?<!\s){_LINE_SPACE}*+{_BREAK}{_LINE_SPACE}*+(?!\s)")
_NON_SPACE = re.compile(r"\S")

# Emphasis marks, in the order the old `(\*\*|__|\*|_|`{1,3}|~~)(?=\S)(.+?)(?<=\S)\1` tried them.
_EMPHASIS = ("**", "__", "*", "_", "```", "``", "`", "~~")
_EMPHASIS_CLOSE = {mark: re.compile(rf"(?<=\S){re.escape(mark)}") for mark in _EMPHASIS}
_ANY_EMPHASIS = re.compile(r"[*_`]|~~")
# Unicode's stream-safe format allows 30 combining marks in a row; NFKC sorts a run of them
# by insertion, quadratic in its length.
_MAX_COMBINING = 30


def clean(text: str) -> str:
    """Plain text: markup removed, Unicode NFKC, whitespace normalised, paragraphs kept."""
    control, combining_run = _unicode_classes()
    text = combining_run.sub(_group, text)
    text = unicodedata.normalize("NFKC", text)
    text = _HTML_TAG_REVERSED.sub(" ", text[::-1])[::-1]
    text = _MD_LINK.sub(_group, text)
    text = _strip_emphasis(text)
    text = _MD_MARKS.sub(_group, text)
    text = _URL.sub("", text)
    text = control.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _PARAGRAPH_GAP.sub("\n\n", text)
    return _LINE_GAP.sub(" ", text).strip()


def _group(match: re.Match[str]) -> str:
    """The match's last matched group: what is kept of it (a function, where r"\\1" would be a
    third as fast on Python 3.11)."""
    return match[match.lastindex or 0]


def _strip_emphasis(text: str) -> str:
    """`**x**`, `_x_`, `` `x` ``, `~~x~~` → x within a line, the first closing mark winning.

    The single expression this replaces scanned to the end of the line from every opening
    mark that had no closing one. Here each mark remembers its next closing mark and the
    newline before which it closes nothing, so no stretch is scanned twice for one mark."""
    if not _ANY_EMPHASIS.search(text):
        return text
    end = len(text)
    never = end + 1
    closing = dict.fromkeys(_EMPHASIS, -1)  # each mark's first closing mark after its last look
    blocked = dict.fromkeys(_EMPHASIS, 0)  # each mark opens nothing before this position
    out: list[str] = []
    done = pos = until = 0
    stale = True  # a mark was blocked: which marks may open, and until where, is to be redone
    while pos < end:
        if stale or pos >= until:
            alive = tuple(mark for mark in _EMPHASIS if blocked[mark] <= pos)
            until = min((b for b in blocked.values() if pos < b < never), default=end)
            openers = _emphasis_openers(alive) if alive else None
            stale = False
        found = openers.search(text, pos, until) if openers else None
        if found is None:
            if until >= end:
                break
            pos = until
            continue
        at = found.start()
        for mark in alive:
            start = at + len(mark)
            if not text.startswith(mark, at) or start >= end or text[start].isspace():
                continue
            close = closing[mark]
            if close <= start:
                following = _EMPHASIS_CLOSE[mark].search(text, start + 1)
                close = closing[mark] = following.start() if following else never
            if close < never:
                newline = text.find("\n", start, close)
                if newline < 0:
                    out += (text[done:at], text[start:close])
                    done = pos = close + len(mark)
                    break
                blocked[mark] = newline + 1  # it closes nothing on this line
            else:
                blocked[mark] = never  # nothing after it closes it
            stale = True
        else:
            pos = at + 1
    out.append(text[done:])
    return "".join(out)


@functools.cache
def _emphasis_openers(marks: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(rf"{re.escape(mark)}(?=\S)" for mark in marks))


@functools.cache
def _unicode_classes() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(control characters but \\n and \\t, a run of over 30 combining marks), from this
    Python's Unicode tables; built once, in about half a second."""
    category, combining = unicodedata.category, unicodedata.combining

    def non_starter(ch: str) -> bool:
        if combining(ch):
            return True
        return bool(unicodedata.decomposition(ch)) and bool(
            combining(unicodedata.normalize("NFKD", ch)[0])
        )

    controls, marks = [], []
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if category(ch)[0] == "C" and ch not in "\n\t":
            controls.append(code)
        elif non_starter(ch):
            marks.append(code)
    mark = _char_class(marks)
    return re.compile(_char_class(controls)), re.compile(
        f"((?:{mark}){{{_MAX_COMBINING}}})(?:{mark})+"
    )


def _char_class(codes: list[int]) -> str:
    """A character class of `codes`: sre looks a Basic Multilingual Plane character up in one
    table, but tries astral ranges one by one, so only astral characters go to those."""
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def spans(rs: list[list[int]]) -> str:
        return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in rs)

    plane = 0xFFFF
    basic = [[a, min(b, plane)] for a, b in ranges if a <= plane]
    astral = [[max(a, plane + 1), b] for a, b in ranges if b > plane]
    branches = [f"[{spans(basic)}]"] if basic else []
    if astral:
        branches.append(f"(?=[\\U{plane + 1:08x}-\\U{sys.maxunicode:08x}])[{spans(astral)}]")
    return "|".join(branches) or "[^\\s\\S]"


def chunks(text: str, max_chars: int = 800) -> list[str]:
    """Passages of at most `max_chars`, cut at sentence ends (or spaces for run-on text)."""
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        current = ""
        for sentence in _SENTENCE_END.split(paragraph):
            # A run-on sentence is cut by moving `start`, never by copying what is left of it.
            start, stop = 0, len(sentence)
            if stop > max_chars:
                stripped_stop = len(sentence.rstrip())
                while stop - start > max_chars:
                    cut = sentence.rfind(" ", start, start + max_chars)
                    cut = cut if cut > start else start + max_chars
                    pieces.append(sentence[start:cut].strip())
                    rest = _NON_SPACE.search(sentence, cut)
                    start = rest.start() if rest else len(sentence)
                    stop = max(stripped_stop, start)
                sentence = sentence[start:stop]
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
