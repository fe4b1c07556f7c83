"""Poison events for real pending replies: the consumer that cannot handle one dead-letters it,
and the backend fails what it belonged to with a readable reason; the reply can be retried.

- a malformed `save_response` carrying the reply's `message_id` (the text worker is frozen, so
  its genuine answer cannot come first);
- a well-formed `save_response_dub` whose `voice` note does not fit its column, so the
  backend's handler fails the same way every time (the sound worker is frozen meanwhile).
"""

import json
import uuid

import pytest
from bishop_contracts import events as ev
from bishop_contracts.layout import avatar_prefix
from bishop_contracts.topics import Topic

from tests.faults.api import read_stream
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.servers


async def test_a_poison_event_fails_its_reply_with_a_reason_and_retry_works(
    fault: FaultStack,
) -> None:
    services = fault.services
    user = await fault.user()
    bus = await fault.bus()

    # 1. Malformed, on the backend's own topic.
    services.freeze("ml-text")
    try:
        reply_id = (await user.send("Отравленный вопрос"))["response_id"]
        poison = {
            "event": "save_response",
            "event_id": str(uuid.uuid4()),
            "message_id": reply_id,
            "generated_text": {"not": "a string"},
        }
        await bus.publish_raw(Topic.SAVE_RESPONSE, reply_id, json.dumps(poison).encode())
        failed = await user.wait_reply(reply_id, lambda m: m["status"] != "pending", within=30)
        fault.mark("malformed save_response: reply failed")
        assert failed["status"] == "failed" and failed["error"], failed
        events, _ = await read_stream(user, reply_id, within=10)
        assert events and events[0][0] == "error" and events[0][1]["reason"], events
        retried = await user.retry(reply_id)
        assert retried["status"] == "pending", retried
    finally:
        services.thaw("ml-text")
    ready = await user.wait_reply(reply_id, lambda m: m["status"] != "pending", within=60)
    assert ready["status"] == "ready", ready
    fault.mark("retried reply ready")

    # 2. Well-formed, but its handler fails whatever is tried: the dub fails with the reason.
    me = await user.get("/users/me")
    services.freeze("ml-sound")
    try:
        second = (await user.send("Второй вопрос"))["response_id"]
        await user.wait_reply(second, lambda m: m["status"] != "pending", within=60)
        dub = ev.SaveResponseDub(
            message_id=uuid.UUID(second),
            dub_url=f"{avatar_prefix(me['id'], user.avatar_id)}dubs/{second}.wav",
            voice="v" * 300,
        )
        await bus.publish(Topic.SAVE_RESPONSE_DUB, dub)
        voiced = await user.wait_reply(second, lambda m: m["dub_status"] != "pending", within=30)
        fault.mark(f"oversized save_response_dub: dub {voiced['dub_status']}")
    finally:
        services.thaw("ml-sound")
    assert voiced["dub_status"] == "failed" and voiced["error"], voiced

    snap = await fault.settle(user)
    replies = [m for m in snap.messages if m["role"] == "avatar"]
    assert len(replies) == len(user.sent) and all(m["status"] == "ready" for m in replies), replies
