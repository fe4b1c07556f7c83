"""The base model's chat format. Saiga: `<s>{role}\\n{content}</s>`, roles system/user/bot."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "bot"]
BOS, EOS = "<s>", "</s>"


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


def render(turns: list[Turn]) -> str:
    return "".join(f"{BOS}{t.role}\n{t.content}{EOS}" for t in turns)


def prompt(turns: list[Turn]) -> str:
    """`turns` followed by the opening of the bot's answer, for generation."""
    return render(turns) + f"{BOS}bot\n"


def fit(turns: list[Turn], budget: int, count: Callable[[str], int]) -> list[Turn]:
    """`turns` whose prompt is within `budget` (as `count` measures it), or as near as they get:
    the oldest history goes first, then the system text's last lines (the least relevant
    passage first, never half of one), then half of what is left of it; the user's message
    always stays."""
    system, history, message = turns[0], list(turns[1:-1]), turns[-1]
    while True:
        fitted = [system, *history, message]
        lines = system.content.split("\n")
        if count(prompt(fitted)) <= budget:
            return fitted
        if history:
            history.pop(0)
        elif len(lines) > 1:
            system = Turn("system", "\n".join(lines[:-1]))
        elif len(system.content) > 100:
            system = Turn("system", system.content[: len(system.content) // 2])
        else:
            return fitted
