"""Text types for the API's request models: user input with NUL, control characters or lone
surrogates is refused with a 422 before it can reach the database (Postgres rejects NUL), a
worker or a page."""

from typing import Annotated, Any

from bishop_contracts.text import input_problem
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

# Before pydantic's own str check, which would refuse a lone surrogate with a vaguer message.


def _text(value: Any) -> Any:
    return _checked(value, multiline=True)


def _line(value: Any) -> Any:
    return _checked(value, multiline=False)


def _checked(value: Any, *, multiline: bool) -> Any:
    if isinstance(value, str) and (problem := input_problem(value, multiline=multiline)):
        raise PydanticCustomError("text_control_characters", problem)
    return value


SafeText = Annotated[str, BeforeValidator(_text)]
"""Multi-line text (messages, persona): line breaks and tabs are allowed."""

SafeLine = Annotated[str, BeforeValidator(_line)]
"""One line (names, titles, passwords)."""
