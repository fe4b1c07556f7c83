"""The browser app's reply stream relay with a reply the user stopped: the kept text ends it."""

from collections.abc import AsyncIterator

from bishop_frontend.pages.replies import ReplyBubble, _fragments
from fasthtml import common as fh


async def _upstream() -> AsyncIterator[bytes]:
    yield b'event: delta\ndata: {"index": 0, "text": "\\u0414\\u043e"}\n\n'
    yield b'event: stopped\ndata: {"text": "\\u0414\\u043e\\u0431\\u0440"}\n\n'
    yield b'event: delta\ndata: {"index": 1, "text": "never shown"}\n\n'


async def _no_voice() -> None:
    raise AssertionError("a stopped reply is not voiced")


async def test_the_relay_ends_a_stopped_reply_with_the_text_it_kept() -> None:
    out = [m async for m in _fragments("/b", "r", _upstream(), _no_voice)]
    assert [m.split("\n", 1)[0] for m in out] == ["event: text", "event: text", "event: done"]
    assert "Добр" in out[1] and "never shown" not in "".join(out)


def test_a_stopped_reply_shows_its_text_with_no_stream() -> None:
    reply = {"id": "r", "status": "stopped", "text": "Добр", "dub_status": "none"}
    html = fh.to_xml(ReplyBubble("/b", reply))
    assert "Добр" in html and "sse-connect" not in html and "typing" not in html
