"""A person's words for text tests: varied enough to train on, repeated enough to learn."""

import random

WORDS = (
    "импульс масса скорость энергия система закон сила тело движение время "
    "физика опыт ученик урок задача ответ вопрос формула пример лекция"
).split()


def lecture(sentences: int = 80, seed: int = 1) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 10))]
        lines.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
    return " ".join(lines)
