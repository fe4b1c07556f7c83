"""A reply shows the passages it was built on: with their file names, and only the avatar's own."""

import asyncio
import uuid
from typing import Any

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack
from tests.support.sse import read_events

LECTURE = "Импульс — это произведение массы на скорость.\nОн сохраняется."
NOTES = "Энергия не возникает из ничего & не исчезает <никуда>."


async def _materials(
    client: httpx.AsyncClient, headers: dict[str, str], aid: str, *names: str
) -> list[dict[str, Any]]:
    uploaded = await factories.upload(client, headers, aid, [(n, factories.TEXT) for n in names])
    assert uploaded.status_code == 201, uploaded.text
    return uploaded.json()


async def test_a_reply_shows_its_sources_and_never_another_users(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    lecture, notes = await _materials(client, headers, aid, "lecture.txt", "notes.txt")
    stranger = await factories.user(client)
    stranger_aid = (await factories.avatar(client, stranger))["id"]
    (secret,) = await _materials(client, stranger, stranger_aid, "secret-diary.txt")

    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    sent = await client.post(msgs, json={"message": "Что такое импульс?"}, headers=headers)
    reply_id = sent.json()["response_id"]

    # A stream open before the answer: a delta shows it is subscribed.
    live: list[tuple[str, dict[str, Any]]] = []
    reading = asyncio.create_task(
        read_events(client, f"{msgs}/{reply_id}/response/stream", headers, live, until="text")
    )
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.ResponseDelta(message_id=reply_id, index=0, text="Импульс")
    )
    async with asyncio.timeout(15):
        while not live:
            await asyncio.sleep(0.02)

    answer = ev.SaveResponse(
        message_id=reply_id,
        generated_text="Импульс — это mv.",
        passage_ids=["p-notes", "p-secret", "p-gone", "p-lecture"],
        # Out of order, and with a passage of another user's material and of no material.
        sources=[
            ev.Source(material_id=notes["id"], passage_id="p-notes", text=NOTES, rank=2),
            ev.Source(material_id=secret["id"], passage_id="p-secret", text="чужое", rank=3),
            ev.Source(material_id=uuid.uuid4(), passage_id="p-gone", text="нет файла", rank=4),
            ev.Source(material_id=lecture["id"], passage_id="p-lecture", text=LECTURE, rank=1),
        ],
    )
    await stack.probe.publish(Topic.SAVE_RESPONSE, answer)
    expected = [
        {"material_id": lecture["id"], "file_name": "lecture.txt", "text": LECTURE, "rank": 1},
        {"material_id": notes["id"], "file_name": "notes.txt", "text": NOTES, "rank": 2},
    ]

    live_events = await asyncio.wait_for(reading, 20)
    assert live_events[-1] == (
        "text",
        {"text": "Импульс — это mv.", "passage_ids": answer.passage_ids, "sources": expected},
    )
    reply = await until(
        client, f"{msgs}/{reply_id}/response", headers, lambda r: r["status"] == "ready"
    )
    assert reply["sources"] == expected
    assert reply["passage_ids"] == answer.passage_ids  # kept as the worker sent them
    listed = (await client.get(msgs, headers=headers)).json()
    assert [m["sources"] for m in listed] == [[], expected]
    # A stream opened after the answer catches up with the same sources.
    later = await read_events(client, f"{msgs}/{reply_id}/response/stream", headers, until="text")
    assert later[-1][1]["sources"] == expected
    everything = str([reply, listed, live_events, later])
    assert "secret-diary" not in everything and "чужое" not in everything
    assert "нет файла" not in everything


async def test_sources_are_cleaned_and_a_reply_without_them_has_none(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    (lecture,) = await _materials(client, headers, aid, "lecture.txt")
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    first = (await client.post(msgs, json={"message": "1"}, headers=headers)).json()
    second = (await client.post(msgs, json={"message": "2"}, headers=headers)).json()

    # A passage as a worker may send it: with a NUL, which Postgres would refuse.
    dirty = ev.Source(material_id=lecture["id"], passage_id="p", text="До\x00ма", rank=1)
    await stack.probe.publish(
        Topic.SAVE_RESPONSE,
        ev.SaveResponse(message_id=first["response_id"], generated_text="Да", sources=[dirty]),
    )
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=second["response_id"], generated_text="Нет")
    )
    ready = [
        await until(
            client,
            f"{msgs}/{sent['response_id']}/response",
            headers,
            lambda r: r["status"] == "ready",
            ok_404=True,
        )
        for sent in (first, second)
    ]
    assert [r["sources"] for r in ready] == [
        [{"material_id": lecture["id"], "file_name": "lecture.txt", "text": "Дома", "rank": 1}],
        [],
    ]
