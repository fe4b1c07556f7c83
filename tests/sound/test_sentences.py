import pytest
from bishop_sound.sentences import split_sentences

CASES = [
    (
        "Привет! Как дела? Всё хорошо… А у тебя?",
        ["Привет!", "Как дела?", "Всё хорошо…", "А у тебя?"],
    ),
    ("Hello there. How are you?! Fine...", ["Hello there.", "How are you?!", "Fine..."]),
    (
        "А. С. Пушкин родился в Москве. Это известно.",
        ["А. С. Пушкин родился в Москве.", "Это известно."],
    ),
    (
        "Mr. Smith met Dr. Who at 5 p.m. Then they left.",
        ["Mr. Smith met Dr. Who at 5 p.m.", "Then they left."],
    ),
    ("Число пи равно 3.14. Скорость 2,5 м/с.", ["Число пи равно 3.14.", "Скорость 2,5 м/с."]),
    (
        "Pi is 3.14159 and e is 2.718. Both are irrational.",
        ["Pi is 3.14159 and e is 2.718.", "Both are irrational."],
    ),
    ("См. рис. 5 ниже. Т.е. всё просто.", ["См. рис. 5 ниже.", "Т.е. всё просто."]),
    (
        "«Ты придёшь?» — спросила она. — Да, — ответил он.",
        ["«Ты придёшь?» — спросила она.", "— Да, — ответил он."],
    ),
    (
        "It costs $1.5 million. See e.g. the report.",
        ["It costs $1.5 million.", "See e.g. the report."],
    ),
    ("В 2024 г. Было много событий.", ["В 2024 г.", "Было много событий."]),
    ("Он сказал: «Всё будет хорошо.» И ушёл.", ["Он сказал: «Всё будет хорошо.»", "И ушёл."]),
    ("  одна   фраза  без точки ", ["одна фраза без точки"]),
    ("", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:24] or "empty" for c in CASES])
def test_split(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_long_sentences_are_cut_at_soft_breaks_within_the_limit() -> None:
    text = "Первая часть длинной фразы, " * 12 + "конец."
    pieces = split_sentences(text, max_chars=120)
    assert all(len(p) <= 120 for p in pieces)
    assert all(p.endswith(",") for p in pieces[:-1])
    assert " ".join(pieces) == " ".join(text.split())


def test_a_word_longer_than_the_limit_is_still_cut() -> None:
    assert [len(p) for p in split_sentences("x" * 250, max_chars=100)] == [100, 100, 50]
