"""Stop: a reply stopped while it streams keeps the text so far, is marked `stopped`, is not
voiced, and the text worker is told to stop; whatever its generation sends later changes
nothing, and a stopped reply can be asked for again."""

import asyncio
import contextlib
import uuid
from typing import Any

import httpx
from bishop_backend.services import replies
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.state import state_from_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack
from tests.support.sse import read_events

PIECES = ["Добрый", " день", ", как"]


async def _pending_reply(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> tuple[str, str, str, str]:
    """A chat's messages path, the avatar's id, the user's message id and its pending reply's."""
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    sent = (await client.post(msgs, json={"message": "Привет"}, headers=headers)).json()
    return msgs, aid, sent["message"]["id"], sent["response_id"]


async def _follow(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], into: list[tuple[str, Any]]
) -> None:
    """Read a reply stream into `into` as its events arrive, until the server ends it."""
    await read_events(client, url, headers, into)


async def _stream_deltas(stack: Stack, reply_id: str, pieces: list[str]) -> None:
    # Out of order on purpose: the kept text is joined by index, not by arrival.
    for index in [1, 0, *range(2, len(pieces))]:
        await stack.probe.publish(
            Topic.SAVE_RESPONSE,
            ev.ResponseDelta(message_id=reply_id, index=index, text=pieces[index]),
        )


async def _stopped_midway(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str]
) -> tuple[str, str, str, httpx.Response]:
    """A reply stopped after its pieces were streamed to a reader: the messages path, the
    avatar's id, the reply's id and the stop's response."""
    msgs, aid, _, reply_id = await _pending_reply(client, headers)
    seen: list[tuple[str, Any]] = []
    reader = asyncio.create_task(
        _follow(client, f"{msgs}/{reply_id}/response/stream", headers, seen)
    )
    await _stream_deltas(stack, reply_id, PIECES)
    async with asyncio.timeout(15):
        while len(seen) < len(PIECES):
            await asyncio.sleep(0.02)
    stopped = await client.post(f"{msgs}/{reply_id}/response/stop", headers=headers)
    await asyncio.wait_for(reader, 15)
    return msgs, aid, reply_id, stopped


async def _handled(stack: Stack, event_id: uuid.UUID) -> None:
    """Wait until the backend has recorded `event_id` as handled."""
    engine = create_async_engine(stack.settings.resolved_database_url)
    key = event_id if "postgres" in engine.url.drivername else event_id.hex
    try:
        async with asyncio.timeout(15):
            while True:
                async with engine.connect() as conn:
                    found = (
                        await conn.execute(
                            text("SELECT 1 FROM processed_event WHERE event_id = :id"), {"id": key}
                        )
                    ).first()
                if found:
                    return
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def test_a_stopped_reply_keeps_its_streamed_text_and_its_stream_ends_stopped(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs, aid, question_id, reply_id = await _pending_reply(client, headers)
    seen: list[tuple[str, Any]] = []
    reader = asyncio.create_task(
        _follow(client, f"{msgs}/{reply_id}/response/stream", headers, seen)
    )
    await _stream_deltas(stack, reply_id, PIECES)
    async with asyncio.timeout(15):
        while len(seen) < len(PIECES):
            await asyncio.sleep(0.02)

    # Stopped by the user's message, as the other response routes take it.
    stopped = await client.post(f"{msgs}/{question_id}/response/stop", headers=headers)
    assert stopped.status_code == 200, stopped.text
    reply = stopped.json()
    kept = "".join(PIECES)
    assert (reply["id"], reply["status"], reply["text"]) == (reply_id, "stopped", kept)
    assert reply["dub_status"] == "none" and reply["error"] is None

    # The open stream ends with the text kept.
    await asyncio.wait_for(reader, 15)
    assert sorted(d["index"] for kind, d in seen if kind == "delta") == [0, 1, 2]
    assert seen[-1] == ("stopped", {"text": kept})
    # A stream opened later ends at once, the same way.
    later = await read_events(client, f"{msgs}/{reply_id}/response/stream", headers)
    assert later == [("stopped", {"text": kept})]
    stored = (await client.get(f"{msgs}/{reply_id}/response", headers=headers)).json()
    assert (stored["status"], stored["text"]) == ("stopped", kept)
    assert (await client.get(f"{msgs}/{reply_id}/response/dub", headers=headers)).status_code == 404

    # The text worker is told, once.
    cancel = await stack.probe.wait_for(
        lambda e: e.event == "response_cancel" and str(e.message_id) == reply_id
    )
    assert str(cancel.avatar_id) == aid
    await asyncio.sleep(0.5)
    assert (
        len(
            stack.probe.all(
                lambda e: e.event == "response_cancel" and str(e.message_id) == reply_id
            )
        )
        == 1
    )


async def test_what_the_generation_sends_after_a_stop_changes_nothing(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    me = (await client.get("/users/me", headers=headers)).json()
    msgs, aid, reply_id, stopped = await _stopped_midway(client, stack, headers)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    kept = stopped.json()["text"]

    # The worker had not seen the stop yet: a piece, the whole text, a dub and a failure.
    late = [
        ev.ResponseDelta(message_id=reply_id, index=3, text=" поживаете?"),
        ev.SaveResponse(message_id=reply_id, generated_text="Добрый день, как поживаете?"),
        ev.ResponseFailed(message_id=reply_id, reason="cancelled"),
    ]
    for event in late:
        await stack.probe.publish(Topic.SAVE_RESPONSE, event)
    dub_url = f"users/{me['id']}/avatars/{aid}/dubs/{reply_id}.wav"
    dub = ev.SaveResponseDub(message_id=reply_id, dub_url=dub_url, generated_text="Иное")
    await stack.probe.publish(Topic.SAVE_RESPONSE_DUB, dub)
    # Same topic and key: handled in the order published, so the delta came first.
    await _handled(stack, late[-1].event_id)
    await _handled(stack, dub.event_id)

    reply = (await client.get(f"{msgs}/{reply_id}/response", headers=headers)).json()
    assert (reply["status"], reply["text"], reply["error"]) == ("stopped", kept, None)
    assert reply["dub_status"] == "none"
    assert not stack.probe.all(
        lambda e: e.event == "sound_inference" and str(e.message_id) == reply_id
    )
    # The late piece was dropped, not stored for a stream to send.
    state = state_from_url(stack.settings.state_url)
    try:
        assert "3" not in await state.get_fields(replies.deltas_key(uuid.UUID(reply_id)))
    finally:
        if stack.name == "servers":
            await state.close()
    later = await read_events(client, f"{msgs}/{reply_id}/response/stream", headers)
    assert later == [("stopped", {"text": kept})]


async def test_only_a_reply_being_generated_can_be_stopped(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs, _, _, reply_id = await _pending_reply(client, headers)
    stranger = await factories.user(client)
    # Another user's reply is not found, and stays as it was.
    theirs = await client.post(f"{msgs}/{reply_id}/response/stop", headers=stranger)
    assert theirs.status_code == 404
    assert (await client.get(f"{msgs}/{reply_id}/response", headers=headers)).status_code == 404

    first = await client.post(f"{msgs}/{reply_id}/response/stop", headers=headers)
    again = await client.post(f"{msgs}/{reply_id}/response/stop", headers=headers)
    assert first.status_code == 200
    assert again.status_code == 409 and "stopped" in again.json()["detail"]

    msgs, _, _, ready_id = await _pending_reply(client, headers)
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=ready_id, generated_text="Готово")
    )
    await until(
        client,
        f"{msgs}/{ready_id}/response",
        headers,
        lambda r: r["status"] == "ready",
        ok_404=True,
    )
    done = await client.post(f"{msgs}/{ready_id}/response/stop", headers=headers)
    assert done.status_code == 409 and "ready" in done.json()["detail"]
    after = (await client.get(f"{msgs}/{ready_id}/response", headers=headers)).json()
    assert (after["status"], after["text"]) == ("ready", "Готово")
    assert not stack.probe.all(
        lambda e: e.event == "response_cancel" and str(e.message_id) == ready_id
    )


async def test_a_stopped_reply_can_be_asked_for_again(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs, _, reply_id, stopped = await _stopped_midway(client, stack, headers)
    assert stopped.status_code == 200

    retried = await client.post(f"{msgs}/{reply_id}/response/retry", headers=headers)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["text"]) == ("pending", "")
    async with asyncio.timeout(15):
        while (
            len(
                requests := stack.probe.all(
                    lambda e: e.event == "inference_response" and str(e.message_id) == reply_id
                )
            )
            < 2
        ):
            await asyncio.sleep(0.05)
    assert requests[1].text == "Привет" and requests[0].event_id != requests[1].event_id

    # The new attempt streams afresh (the stop's pieces are gone) and its answer is taken.
    seen: list[tuple[str, Any]] = []
    reader = asyncio.create_task(
        _follow(client, f"{msgs}/{reply_id}/response/stream", headers, seen)
    )
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.ResponseDelta(message_id=reply_id, index=0, text="Снова")
    )
    # Announced or read back from what is stored, whichever comes first.
    async with asyncio.timeout(15):
        while not seen:
            await asyncio.sleep(0.02)
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=reply_id, generated_text="Снова здесь")
    )
    ready = await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["status"] == "ready",
        ok_404=True,
    )
    assert ready["text"] == "Снова здесь" and ready["dub_status"] == "pending"
    async with asyncio.timeout(15):
        while not any(kind == "text" for kind, _ in seen):
            await asyncio.sleep(0.02)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    assert [d["text"] for kind, d in seen if kind == "delta"] == ["Снова"]
