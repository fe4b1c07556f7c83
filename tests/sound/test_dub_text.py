"""Reply text reaches the synthesiser without NUL or control characters."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bishop_contracts import events as ev

from tests.sound.test_dubbing import Harness, _harness


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async for h in _harness(tmp_path, {"tts_backend": "demo"}):
        yield h


async def test_nul_and_control_characters_are_not_spoken(harness: Harness) -> None:
    request = harness.request("При\x00вет\ufffd!\x07 Как\r\nдела?\x1b", [])
    await harness.dubber().dub(request)
    done = await harness.outcome(request)
    assert isinstance(done, ev.SaveResponseDub), done  # espeak: "embedded null byte"
    chunks = harness.probe.all(
        lambda e: e.event == "dub_chunk" and e.message_id == request.message_id
    )
    assert [c.text for c in chunks] == ["Привет!", "Как дела?"]
