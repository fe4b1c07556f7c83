"""The backend's consumer: duplicates change state once, malformed events are skipped."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from bishop_backend.infra import Infra
from bishop_backend.services import orchestrator
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic

from tests import factories
from tests.backend.helpers import started_run, until
from tests.conftest import Stack
from tests.support.sse import read_events


async def _pending_reply(
    client: httpx.AsyncClient, headers: dict[str, str], aid: str
) -> tuple[str, str]:
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    sent = await client.post(msgs, json={"message": "Привет"}, headers=headers)
    return msgs, sent.json()["response_id"]


async def _training_finished(
    client: httpx.AsyncClient, stack: Stack
) -> tuple[dict[str, str], str, ev.TrainFinished]:
    """A new user's avatar with a training run started, and the event that finishes it."""
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    me = (await client.get("/users/me", headers=headers)).json()
    run_id = await started_run(client, stack, headers, aid)
    finished = ev.TrainFinished(
        avatar_id=aid, run_id=run_id, adapter_url=f"users/{me['id']}/avatars/{aid}/adapters/1"
    )
    return headers, aid, finished


async def test_an_event_delivered_twice_changes_state_once(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers, aid, finished = await _training_finished(client, stack)

    await stack.probe.publish(Topic.TRAIN_STATUS, finished)
    await stack.probe.publish(Topic.TRAIN_STATUS, finished)

    msgs, reply_id = await _pending_reply(client, headers, aid)
    saved = ev.SaveResponse(message_id=reply_id, generated_text="Здравствуйте")
    await stack.probe.publish(Topic.SAVE_RESPONSE, saved)
    await stack.probe.publish(Topic.SAVE_RESPONSE, saved)
    # A redelivered thesis-format message (no event_id) counts once too.
    legacy = (
        b'{"event": "save_response", "message_id": "%s", "generated_text": "Hi"}'
        % reply_id.encode()
    )
    await stack.probe.publish_raw(Topic.SAVE_RESPONSE, legacy, key=reply_id)
    await stack.probe.publish_raw(Topic.SAVE_RESPONSE, legacy, key=reply_id)

    await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["status"] == "ready",
        ok_404=True,
    )
    await stack.probe.wait_for(
        lambda e: e.event == "sound_inference" and str(e.message_id) == reply_id
    )
    await asyncio.sleep(1.0)  # room for a wrong second effect to show up
    assert len((await client.get(f"/avatars/{aid}/versions", headers=headers)).json()) == 1
    dub_requests = stack.probe.all(
        lambda e: e.event == "sound_inference" and str(e.message_id) == reply_id
    )
    assert len({e.event_id for e in dub_requests}) == 1
    reply = (await client.get(f"{msgs}/{reply_id}/response", headers=headers)).json()
    assert reply["text"] == "Здравствуйте"  # the legacy duplicate did not overwrite the reply


async def test_twins_of_an_event_handled_at_once_run_its_handler_once(
    client: httpx.AsyncClient, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three copies of a finished training handled at the same moment by one backend, as a
    redelivery racing its original: the first records the event, and the others are refused
    by that record before their handler runs."""
    headers, aid, finished = await _training_finished(client, stack)
    handler = orchestrator.DB_HANDLERS[ev.TrainFinished]
    runs = 0

    async def counted(*args: Any) -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)  # the twins arrive while it runs
        await handler(*args)

    monkeypatch.setitem(orchestrator.DB_HANDLERS, ev.TrainFinished, counted)
    infra = Infra.from_settings(stack.settings)
    try:
        await asyncio.gather(*(orchestrator.Orchestrator(infra).handle(finished) for _ in range(3)))
    finally:
        await infra.close()
    assert runs == 1
    versions = (await client.get(f"/avatars/{aid}/versions", headers=headers)).json()
    assert len(versions) == 1


async def test_malformed_events_are_skipped_and_the_consumer_keeps_going(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    msgs, reply_id = await _pending_reply(client, headers, aid)
    other_user = await factories.user(client)
    other_aid = (await factories.avatar(client, other_user))["id"]
    other_me = (await client.get("/users/me", headers=other_user)).json()

    for raw in (
        b"not json at all",
        b"{}",
        b'{"event": "save_response"}',  # required fields missing
        b'{"event": "save_response", "message_id": "not-a-uuid", "generated_text": "x"}',
        b'{"event": "no_such_event", "message_id": "%s"}' % reply_id.encode(),
        b"\xff\xfe\x00",
        # A valid event on the wrong topic.
        ev.TrainStop(avatar_id=aid).to_bytes(),
    ):
        await stack.probe.publish_raw(Topic.SAVE_RESPONSE, raw, key=reply_id)
    # A dub pointing into another user's storage is refused.
    foreign = f"users/{other_me['id']}/avatars/{other_aid}/dubs/{reply_id}.wav"
    await stack.probe.publish(
        Topic.SAVE_RESPONSE_DUB, ev.SaveResponseDub(message_id=reply_id, dub_url=foreign)
    )
    # Events about things that do not exist change nothing.
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=uuid.uuid4(), generated_text="?")
    )
    await stack.probe.publish(
        Topic.TRAIN_STATUS, ev.TrainFinished(avatar_id=aid, run_id=uuid.uuid4(), adapter_url="x")
    )

    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=reply_id, generated_text="Жив")
    )
    reply = await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["status"] == "ready",
        ok_404=True,
    )
    assert reply["text"] == "Жив"
    assert reply["dub_status"] == "pending"
    assert (await client.get(f"{msgs}/{reply_id}/response/dub", headers=headers)).status_code == 404
    assert (await client.get(f"/avatars/{aid}", headers=headers)).json()["status"] == "available"
    assert (await client.get(f"/avatars/{aid}/versions", headers=headers)).json() == []


async def test_failures_reach_the_reply_stream(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    msgs, reply_id = await _pending_reply(client, headers, aid)
    stream = asyncio.create_task(read_events(client, f"{msgs}/{reply_id}/response/stream", headers))
    # Longer than the test heartbeat (1 s): the stream must survive its keep-alives.
    await asyncio.sleep(2.5)
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.ResponseFailed(message_id=reply_id, reason="model not loaded")
    )
    events = await asyncio.wait_for(stream, 20)
    plain = "The avatar could not write a reply. Retry to ask again."  # the cause is logged
    assert events == [("error", {"reason": plain})]
    failed = (await client.get(f"{msgs}/{reply_id}/response", headers=headers)).json()
    assert (failed["status"], failed["error"]) == ("failed", plain)


async def test_a_failed_reply_can_be_retried(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    msgs, reply_id = await _pending_reply(client, headers, aid)
    assert (
        await client.post(f"{msgs}/{reply_id}/response/retry", headers=headers)
    ).status_code == 409
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.ResponseFailed(message_id=reply_id, reason="oom")
    )
    await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["status"] == "failed",
        ok_404=True,
    )
    retried = await client.post(f"{msgs}/{reply_id}/response/retry", headers=headers)
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    requests = await _requests(stack, reply_id, 2)
    assert requests[1].text == "Привет" and requests[0].event_id != requests[1].event_id


async def _requests(stack: Stack, reply_id: str, count: int) -> list:
    async with asyncio.timeout(15):
        while (
            len(
                found := stack.probe.all(
                    lambda e: e.event == "inference_response" and str(e.message_id) == reply_id
                )
            )
            < count
        ):
            await asyncio.sleep(0.05)
    return found
