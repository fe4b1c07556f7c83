"""Text hygiene: generated text is cleaned, user input with control characters is refused."""

import pytest
from bishop_contracts.text import clean_generated, input_problem


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Привет, мир", "Привет, мир"),
        ("a\x00b", "ab"),
        ("bell\x07 esc\x1b[0m del\x7f c1\x85\x9f", "bell esc[0m del c1"),
        ("vt\x0bff\x0c", "vtff"),
        ("one\r\ntwo\rthree\nfour", "one\ntwo\nthree\nfour"),
        ("\r\r\n", "\n\n"),
        ("tab\tstays", "tab\tstays"),
        ("cut\ufffd char", "cut char"),
        ("lone \ud800 and \udfff", "lone  and "),
        ("non\ufdd0char\ufffe\uffff\U0001fffe\U0010ffff", "nonchar"),
        ("emoji 😀, accents é, zwj 👩\u200d💻", "emoji 😀, accents é, zwj 👩\u200d💻"),
        ("", ""),
    ],
)
def test_clean_generated(raw: str, clean: str) -> None:
    assert clean_generated(raw) == clean
    assert clean_generated(clean) == clean
    clean.encode()  # always valid UTF-8


@pytest.mark.parametrize("text", ["Привет", "два\nабзаца\r\nи\tтаб", "😀 é", ""])
def test_ordinary_text_is_accepted(text: str) -> None:
    assert input_problem(text) is None


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("a\x00b", "U+0000 at position 1"),
        ("\x07", "U+0007 at position 0"),
        ("c1\x85", "U+0085"),
        ("del\x7f", "U+007F"),
    ],
)
def test_control_characters_are_refused(text: str, found: str) -> None:
    problem = input_problem(text)
    assert problem is not None
    assert problem.startswith("must not contain NUL or control characters")
    assert found in problem


def test_a_lone_surrogate_is_refused() -> None:
    assert "lone surrogate (U+D800)" in (input_problem("x\ud800y") or "")
    assert "lone surrogate (U+DC00)" in (input_problem("\udc00", multiline=False) or "")


def test_line_breaks_and_tabs_only_in_multiline_text() -> None:
    for char in "\n\r\t":
        assert input_problem(f"a{char}b") is None
        assert "control characters" in (input_problem(f"a{char}b", multiline=False) or "")
    assert input_problem("one line", multiline=False) is None
