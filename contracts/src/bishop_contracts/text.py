"""Text hygiene at the services' boundaries.

Generated text is cleaned, user input is refused: Postgres rejects NUL in text columns (the
whole reply would be lost), espeak fails on an "embedded null byte", a browser shows control
characters as boxes, and a lone surrogate cannot even be encoded as UTF-8.
"""

import re

# Noncharacters: U+FDD0..U+FDEF and the last two code points of every plane.
_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17)
)
# C0 but newline and tab, DEL and C1, surrogates, U+FFFD, noncharacters.
_NOT_GENERATED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffd{_NONCHARACTERS}]")
_NOT_TYPED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_TYPED_ON_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_generated(text: str) -> str:
    """`text` from a model without what no reader, database or synthesiser can take.

    A model with a byte-level tokenizer can emit any byte: control characters, and U+FFFD
    where a multi-byte character was cut. Line breaks become "\\n"; tabs stay.
    """
    return _NOT_GENERATED.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def input_problem(text: str, *, multiline: bool = True) -> str | None:
    """Why a user's `text` cannot be accepted, or None.

    Refused, not cleaned: a silently changed password or name would surprise its owner. Line
    breaks and tabs are allowed only in `multiline` text.
    """
    found = (_NOT_TYPED if multiline else _NOT_TYPED_ON_ONE_LINE).search(text)
    if found is None:
        return None
    code = f"U+{ord(found.group()):04X}"
    if found.group() >= "\ud800":
        return f"must not contain a lone surrogate ({code}): it is not valid Unicode text"
    return f"must not contain NUL or control characters ({code} at position {found.start()})"
