"""Generated text with NUL, control characters and a cut UTF-8 sequence, published on the bus as
the text worker would: it is stored and streamed clean, and voiced."""

import asyncio
import json
import uuid

import pytest
from bishop_contracts import events as ev
from bishop_contracts.text import clean_generated
from bishop_contracts.topics import Topic

from tests.faults.api import read_stream
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.servers

# What a byte-level model emits: NUL, BEL, an ANSI escape, a vertical tab, DEL and a C1 control,
# CR LF, and the first byte of "ж" alone (a sequence cut where the output stopped), which the
# tokenizer decodes as U+FFFD.
CUT = "ж".encode()[:1].decode("utf-8", errors="replace")
DIRTY = (
    "Привет\x00, мир\x07! \x1b[31mИмпульс\x1b[0m\x0b — это масса\x7f на скорость\x85.\r\n"
    f"Вторая строка{CUT} конец\x00"
)
DELTAS = ["Привет\x00, ", "мир\x07! \x1b[31m", f"Импульс{CUT}"]


def unclean(text: str) -> list[str]:
    return [
        f"U+{ord(c):04X}"
        for c in text
        if (ord(c) < 0x20 and c not in "\n\t")
        or 0x7F <= ord(c) <= 0x9F
        or 0xD800 <= ord(c) <= 0xDFFF
        or c == "\ufffd"
    ]


async def test_generated_text_with_nul_control_and_cut_utf8_is_stored_clean_and_voiced(
    fault: FaultStack,
) -> None:
    services = fault.services
    user = await fault.user()
    bus = await fault.bus()

    # The real text worker is frozen: the answer published here is the one the reply gets.
    services.freeze("ml-text")
    try:
        reply_id = (await user.send("Что такое импульс?"))["response_id"]
        stream = asyncio.create_task(read_stream(user, reply_id, until={"dub"}, within=60))
        await asyncio.sleep(1.0)  # the stream is subscribed
        message_id = uuid.UUID(reply_id)
        for index, text in enumerate(DELTAS):
            await bus.publish(
                Topic.SAVE_RESPONSE, ev.ResponseDelta(message_id=message_id, index=index, text=text)
            )
        # A lone surrogate cannot even be encoded as UTF-8; as a JSON escape it can arrive.
        await bus.publish_raw(
            Topic.SAVE_RESPONSE,
            reply_id,
            json.dumps(
                {
                    "event": "response_delta",
                    "event_id": str(uuid.uuid4()),
                    "message_id": reply_id,
                    "index": len(DELTAS),
                    "text": " \ud800это",
                }
            ).encode(),
        )
        await bus.publish(
            Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=message_id, generated_text=DIRTY)
        )
        reply = await user.wait_reply(reply_id, lambda m: m["dub_status"] in {"ready", "failed"})
        fault.mark(f"reply {reply['status']}, dub {reply['dub_status']}")
    finally:
        services.thaw("ml-text")
    events, ended = await stream

    assert reply["status"] == "ready", reply
    assert reply["text"] == clean_generated(DIRTY), repr(reply["text"])
    assert not unclean(reply["text"]) and "\n" in reply["text"], repr(reply["text"])
    assert reply["dub_status"] == "ready", reply
    async with user.client() as api:
        dub = await api.get(f"{user.msgs}/{reply_id}/response/dub", headers=user.headers)
    assert dub.status_code == 200 and dub.content[:4] == b"RIFF", dub.status_code

    kinds = [kind for kind, _ in events]
    assert ended == "until" and "text" in kinds, (ended, events)
    streamed = [d.get("text", "") for kind, d in events if kind in {"delta", "text"}]
    assert streamed and not [u for s in streamed for u in unclean(s)], streamed
    text_event = next(d for kind, d in events if kind == "text")
    assert text_event["text"] == reply["text"]
    await fault.settle(user)
