"""The browser app's relay of a reply stream decodes text that network chunks split."""

import json
from collections.abc import AsyncIterator

from bishop_frontend.pages.replies import _events


async def chunks(payload: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


async def test_a_character_split_between_chunks_arrives_whole() -> None:
    text = "Привет, мир! Ёлка и ещё"
    payload = f"event: delta\ndata: {json.dumps({'text': text}, ensure_ascii=False)}\n\n".encode()
    for size in (1, 2, 3, 7):  # every size ends some chunk inside a two-byte letter
        events = [event async for event in _events(chunks(payload, size))]
        assert events == [("delta", {"text": text})]
