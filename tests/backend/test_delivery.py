"""Delivery guarantees seen from the API: the outbox, idempotent resends, dead letters, and the
sweeper that fails what would otherwise wait forever."""

import asyncio
import uuid
from pathlib import Path

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack, serve, stack_settings
from tests.support.sse import read_events


async def _chat(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    return aid, f"/avatars/{aid}/chat/{chat['id']}/msgs"


async def test_a_message_and_its_reply_request_commit_together_and_go_out_once(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    _, msgs = await _chat(client, headers)
    sent = (await client.post(msgs, json={"message": "Привет"}, headers=headers)).json()
    request = await stack.probe.wait_for(
        lambda e: e.event == "inference_response" and str(e.message_id) == sent["response_id"]
    )
    # The relay stamped it sent: the outbox row and the event carry the same id.
    engine = create_async_engine(stack.settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            for _ in range(100):
                row = (
                    await conn.execute(
                        text("SELECT topic, sent_at FROM outbox WHERE event_id = :id"),
                        {
                            "id": request.event_id
                            if "postgres" in engine.url.drivername
                            else request.event_id.hex
                        },
                    )
                ).first()
                if row and row[1] is not None:
                    break
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()
    assert row is not None and row[0] == "llm-inference" and row[1] is not None
    await asyncio.sleep(0.5)
    assert len(stack.probe.all(lambda e: e.event_id == request.event_id)) == 1


async def test_a_resend_with_the_same_idempotency_key_creates_nothing(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid, msgs = await _chat(client, headers)
    key = {"Idempotency-Key": f"send-{uuid.uuid4()}", **headers}
    first = await client.post(msgs, json={"message": "Один раз"}, headers=key)
    again = await asyncio.gather(
        *(client.post(msgs, json={"message": "Один раз"}, headers=key) for _ in range(3))
    )
    assert first.status_code == 201
    assert {r.status_code for r in again} == {201}
    assert {r.json()["response_id"] for r in again} == {first.json()["response_id"]}
    assert all(r.headers.get("idempotent-replayed") == "true" for r in again)
    history = (await client.get(msgs, headers=headers)).json()
    assert len(history) == 2  # one message, one reply
    await asyncio.sleep(0.5)
    requests = stack.probe.all(
        lambda e: (
            e.event == "inference_response" and str(e.message_id) == first.json()["response_id"]
        )
    )
    assert len(requests) == 1

    # The same key with other text is another request: refused, the text is not dropped silently.
    changed = await client.post(msgs, json={"message": "Другой текст"}, headers=key)
    assert changed.status_code == 409
    # The same key on another request is refused, not answered with the first result.
    other_chat = await factories.chat(client, headers, aid, "Second")
    reused = await client.post(
        f"/avatars/{aid}/chat/{other_chat['id']}/msgs", json={"message": "x"}, headers=key
    )
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["detail"]
    # Keys are per user: another user's identical key is theirs alone.
    stranger = await factories.user(client)
    _, their_msgs = await _chat(client, stranger)
    theirs = await client.post(
        their_msgs,
        json={"message": "x"},
        headers={**stranger, "Idempotency-Key": key["Idempotency-Key"]},
    )
    assert theirs.status_code == 201 and theirs.json()["response_id"] != first.json()["response_id"]

    upload_key = {"Idempotency-Key": f"upload-{uuid.uuid4()}", **headers}
    files = [("notes.txt", factories.TEXT)]
    up = await factories.upload(client, upload_key, aid, files)
    up_again = await factories.upload(client, upload_key, aid, files)
    assert up.status_code == up_again.status_code == 201
    assert [m["id"] for m in up_again.json()] == [m["id"] for m in up.json()]
    listed = (await client.get(f"/avatars/{aid}/train/materials", headers=headers)).json()
    assert len(listed) == 1


async def test_a_poison_event_fails_its_reply_with_a_reason_and_retry_works(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    _, msgs = await _chat(client, headers)
    reply_id = (await client.post(msgs, json={"message": "Привет"}, headers=headers)).json()[
        "response_id"
    ]
    # What a worker's bus sends when it gives up on the reply's request.
    await stack.probe.publish(
        Topic.DEAD_LETTER,
        ev.DeadLetter(
            group="ml-text",
            topic=Topic.LLM_INFERENCE,
            reason="ValueError: the adapter is corrupt",
            original_event="inference_response",
            message_id=reply_id,
        ),
    )
    failed = await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["status"] == "failed",
        ok_404=True,
    )
    # The cause stays in the logs; the user reads a plain sentence.
    assert failed["error"] == "Bishop could not process this reply. Retry to ask again."
    retried = await client.post(f"{msgs}/{reply_id}/response/retry", headers=headers)
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=reply_id, generated_text="Теперь да")
    )
    ready = await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["status"] == "ready",
        ok_404=True,
    )
    assert ready["text"] == "Теперь да" and ready["error"] is None


async def test_a_reply_with_no_readable_text_fails_and_can_be_retried(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    _, msgs = await _chat(client, headers)
    reply_id = (await client.post(msgs, json={"message": "Привет"}, headers=headers)).json()[
        "response_id"
    ]
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=reply_id, generated_text="\x00\ufffd \x07")
    )
    failed = await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["status"] == "failed",
        ok_404=True,
    )
    assert "no readable text" in failed["error"] and failed["dub_status"] == "none"
    retried = await client.post(f"{msgs}/{reply_id}/response/retry", headers=headers)
    assert retried.status_code == 200 and retried.json()["status"] == "pending"


async def test_the_sweeper_fails_what_waits_past_its_deadline(tmp_path: Path) -> None:
    """No worker runs: the reply, the material and the run would wait forever."""
    settings = stack_settings("embedded", tmp_path, None).model_copy(
        update={
            "reply_deadline_seconds": 1.0,
            "material_deadline_seconds": 1.0,
            "run_deadline_seconds": 60.0,
            "sweep_interval_seconds": 0.3,
        }
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url + "/api/v1") as client:
        headers = await factories.user(client)
        aid, msgs = await _chat(client, headers)
        reply_id = (await client.post(msgs, json={"message": "Эй"}, headers=headers)).json()[
            "response_id"
        ]
        await factories.upload(client, headers, aid, [("n.txt", factories.TEXT)])
        reply = await until(
            client,
            f"{msgs}/{reply_id}/response",
            headers,
            lambda r: r["status"] == "failed",
            ok_404=True,
        )
        assert "No reply came within" in reply["error"] and "Retry" in reply["error"]
        material = await until(
            client,
            f"/avatars/{aid}/train/materials",
            headers,
            lambda ms: ms[0]["status"] == "failed",
        )
        assert "upload it again" in material[0]["status_detail"]
        retried = await client.post(f"{msgs}/{reply_id}/response/retry", headers=headers)
        assert retried.json()["status"] == "pending"  # a fresh deadline, not failed at once
        await asyncio.sleep(0.5)
        reply = await client.get(f"{msgs}/{reply_id}/response", headers=headers)
        assert reply.status_code == 404  # still waiting


async def test_a_stream_learns_of_a_stored_reply_whose_announcement_was_lost(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """The reply is stored without the notification its handler would send (a Redis hiccup
    after the commit): the open stream still gets it, at its next heartbeat."""
    from bishop_backend.db import create_engine, session_factory
    from bishop_backend.models import Message, ReplyStatus

    headers = await factories.user(client)
    _, msgs = await _chat(client, headers)
    reply_id = (await client.post(msgs, json={"message": "Ты тут?"}, headers=headers)).json()[
        "response_id"
    ]
    reading = asyncio.create_task(
        read_events(client, f"{msgs}/{reply_id}/response/stream", headers)
    )
    await asyncio.sleep(0.3)  # the stream has read the pending reply and is waiting
    engine = create_engine(stack.settings.resolved_database_url)
    try:
        async with session_factory(engine)() as session:
            reply = await session.get(Message, uuid.UUID(reply_id))
            assert reply is not None and reply.status == ReplyStatus.PENDING
            reply.text, reply.status = "Тут", ReplyStatus.READY
            reply.dub_status, reply.error = ReplyStatus.FAILED, "no voice today"
            session.add(reply)
            await session.commit()
    finally:
        await engine.dispose()
    heartbeat = stack.settings.reply_stream_heartbeat
    async with asyncio.timeout(heartbeat * 3 + 2):
        events = await reading
    assert [kind for kind, _ in events] == ["text", "dub_error"]
    assert events[0][1]["text"] == "Тут"
