import asyncio
import uuid
from typing import Any

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url
from bishop_infra.state import state_from_url

from tests import factories
from tests.conftest import Stack, serve, stack_settings
from tests.support.sse import read_events


async def test_several_titled_chats_rename_delete_history(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    first = await factories.chat(client, headers, aid, "Физика")
    second = await factories.chat(client, headers, aid, "Жизнь")
    listed = (await client.get(f"/avatars/{aid}/chat", headers=headers)).json()
    assert [c["title"] for c in listed] == ["Жизнь", "Физика"]  # the newest activity first

    renamed = await client.patch(
        f"/avatars/{aid}/chat/{second['id']}", json={"title": "Быт"}, headers=headers
    )
    assert renamed.json()["title"] == "Быт"
    assert (
        await client.patch(
            f"/avatars/{aid}/chat/{second['id']}", json={"title": ""}, headers=headers
        )
    ).status_code == 422

    msgs = f"/avatars/{aid}/chat/{first['id']}/msgs"
    sent = await client.post(msgs, json={"message": "Вопрос"}, headers=headers)
    assert sent.status_code == 201
    history = (await client.get(msgs, headers=headers)).json()
    assert [(m["role"], m["status"]) for m in history] == [("user", "ready"), ("avatar", "pending")]
    assert history[1]["reply_to_id"] == history[0]["id"]
    assert (await client.post(msgs, json={"message": ""}, headers=headers)).status_code == 422

    assert (
        await client.delete(f"/avatars/{aid}/chat/{first['id']}", headers=headers)
    ).status_code == 204
    assert (await client.get(msgs, headers=headers)).status_code == 404
    assert [
        c["id"] for c in (await client.get(f"/avatars/{aid}/chat", headers=headers)).json()
    ] == [second["id"]]


async def test_history_pages_back_from_the_newest(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    for n in range(5):
        await client.post(msgs, json={"message": f"m{n}"}, headers=headers)
    everything = (await client.get(msgs, headers=headers)).json()
    newest = (await client.get(msgs, params={"limit": 4}, headers=headers)).json()
    assert [m["id"] for m in newest] == [m["id"] for m in everything[-4:]]
    older = (
        await client.get(msgs, params={"limit": 4, "before": newest[0]["id"]}, headers=headers)
    ).json()
    assert [m["id"] for m in older] == [m["id"] for m in everything[-8:-4]]
    other = await factories.chat(client, headers, aid, "Other")
    foreign = await client.get(
        f"/avatars/{aid}/chat/{other['id']}/msgs",
        params={"before": newest[0]["id"]},
        headers=headers,
    )
    assert foreign.status_code == 404


async def test_a_message_sent_with_accept_event_stream_streams_its_reply_in_the_same_response(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """One request per turn: the `sent` event (the stored message and the reply's id), then the
    reply's events as `response/stream` gives them; a resend with the same key streams the same
    reply, and without the header the send answers JSON as before."""
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    keyed = {**headers, "Idempotency-Key": f"stream-{uuid.uuid4()}"}
    events: list[tuple[str, dict[str, Any]]] = []
    reading = asyncio.create_task(
        read_events(client, msgs, keyed, events, send={"message": "Ты где?"}, status=201)
    )
    async with asyncio.timeout(30):
        while not events:
            await asyncio.sleep(0.02)
    kind, sent = events[0]
    assert kind == "sent" and sent["message"]["text"] == "Ты где?"
    reply_id = sent["response_id"]
    answer = ev.SaveResponse(message_id=reply_id, generated_text="Дома")
    await stack.probe.publish(Topic.SAVE_RESPONSE, answer)
    async with asyncio.timeout(30):
        while not any(k == "text" for k, _ in events):
            await asyncio.sleep(0.02)
    reading.cancel()
    assert ("text", {"text": "Дома", "passage_ids": [], "sources": []}) in events

    again = await read_events(
        client, msgs, keyed, send={"message": "Ты где?"}, status=201, until="text"
    )
    assert again[0] == ("sent", sent)
    assert again[1] == ("text", {"text": "Дома", "passage_ids": [], "sources": []})
    listed = (await client.get(msgs, headers=headers)).json()
    assert len(listed) == 2  # the resend created nothing

    plain = await client.post(msgs, json={"message": "А сейчас?"}, headers=headers)
    assert plain.status_code == 201 and plain.json()["response_id"] != reply_id


async def test_a_reply_answered_at_once_reaches_the_stream_it_was_sent_with(tmp_path: Any) -> None:
    """The reply's channel is subscribed to before the send commits, and the stream reads
    nothing stored first: an answer that comes before the response has even begun streaming
    (an instant responder on the in-process bus) must still be in it, turn after turn; and
    every subscription is given up when its response ends."""
    settings = stack_settings("embedded", tmp_path, None)
    # No heartbeat within a turn's time: its re-read of the stored reply would hide a miss.
    settings.reply_stream_heartbeat = 60.0
    responder = bus_from_url(settings.bus_url, client_id="instant")

    async def answer(event: ev.Event) -> None:
        if isinstance(event, ev.InferenceResponse):
            reply = ev.SaveResponse(message_id=event.message_id, generated_text=event.text[::-1])
            await responder.publish(Topic.SAVE_RESPONSE, reply)

    responder.subscribe("instant", [Topic.LLM_INFERENCE], answer)
    await responder.start()
    try:
        async with serve(settings) as url, httpx.AsyncClient(base_url=url + "/api/v1") as client:
            headers = await factories.user(client)
            aid = (await factories.avatar(client, headers))["id"]
            chat = await factories.chat(client, headers, aid)
            msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
            for n in range(20):
                async with asyncio.timeout(10):
                    events = await read_events(
                        client,
                        msgs,
                        headers,
                        send={"message": f"ход {n}"},
                        status=201,
                        until="text",
                    )
                assert [kind for kind, _ in events] == ["sent", "text"]
                assert events[1][1]["text"] == f"ход {n}"[::-1]
            keyed = {**headers, "Idempotency-Key": f"again-{uuid.uuid4()}"}
            first, again = [
                await read_events(
                    client, msgs, keyed, send={"message": "ещё"}, status=201, until="text"
                )
                for _ in range(2)
            ]
            assert again[:2] == first[:2]  # the repeat streams the same reply, read from storage
            # Every subscription is given up once its response is over (the client left each
            # stream after its text): none is left behind by the send's early subscribing.
            channels = state_from_url(settings.state_url)._channels  # type: ignore[attr-defined]
            async with asyncio.timeout(10):
                while channels:
                    await asyncio.sleep(0.05)
    finally:
        await responder.stop()
