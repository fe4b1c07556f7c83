"""The base model's chat format. Saiga: `<s>{role}\\n{content}</s>`, roles system/user/bot."""

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
