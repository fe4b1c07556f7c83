"""The chat list's summaries and search across a user's chats, on both databases."""

import asyncio

import httpx
from bishop_backend.services.search import snippet_around
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack


async def _send(client: httpx.AsyncClient, headers: dict[str, str], aid: str, cid: str, text: str):  # type: ignore[no-untyped-def]
    sent = await client.post(
        f"/avatars/{aid}/chat/{cid}/msgs", json={"message": text}, headers=headers
    )
    assert sent.status_code == 201, sent.text
    return sent.json()


async def test_chat_list_has_the_newest_message_and_most_recent_first(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    quiet = await factories.chat(client, headers, aid, "Тихий")
    busy = await factories.chat(client, headers, aid, "Шумный")
    empty = await factories.chat(client, headers, aid, "Пустой")
    await _send(client, headers, aid, busy["id"], "первый")
    await asyncio.sleep(0.01)
    await _send(client, headers, aid, quiet["id"], "длинное " * 40)
    await asyncio.sleep(0.01)
    sent = await _send(client, headers, aid, busy["id"], "Второй\nвопрос")
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=sent["response_id"], generated_text="Ответ")
    )
    chats = f"/avatars/{aid}/chat"
    listed = await until(
        client, chats, headers, lambda cs: cs[0]["last_message"] == "Ответ", timeout=30
    )
    # Busy got the last message, then quiet; the empty one is ordered by when it was made.
    assert [c["title"] for c in listed] == ["Шумный", "Тихий", "Пустой"]
    by_title = {c["title"]: c for c in listed}
    assert by_title["Пустой"]["last_message"] is None
    assert by_title["Пустой"]["last_message_at"] is None
    long = by_title["Тихий"]["last_message"]
    assert len(long) <= 120 and long.endswith("…") and long.startswith("длинное длинное")
    assert by_title["Шумный"]["last_message_at"] >= by_title["Тихий"]["last_message_at"]
    assert set(listed[0]) >= {"id", "avatar_id", "title", "created_at"}

    # A reply still being written has no text: the snippet is the newest message with some.
    await _send(client, headers, aid, quiet["id"], "Новый\nвопрос")
    listed = (await client.get(chats, headers=headers)).json()
    assert (listed[0]["title"], listed[0]["last_message"]) == ("Тихий", "Новый вопрос")
    assert empty["id"] == listed[-1]["id"]


async def test_search_folds_case_in_every_script_and_stays_in_the_users_chats(
    client: httpx.AsyncClient,
) -> None:
    owner = await factories.user(client)
    first = (await factories.avatar(client, owner, name="Анна"))["id"]
    second = (await factories.avatar(client, owner, name="Boris"))["id"]
    physics = await factories.chat(client, owner, first, "Физика")
    life = await factories.chat(client, owner, second, "Жизнь и ИМПУЛЬС")
    said = await _send(client, owner, first, physics["id"], "Что такое Импульс тела?")
    await _send(client, owner, second, life["id"], "nothing to see here")
    await _send(client, owner, second, life["id"], "100% sure_thing")

    intruder = await factories.user(client)
    other = (await factories.avatar(client, intruder))["id"]
    theirs = await factories.chat(client, intruder, other, "импульс тоже")
    await _send(client, intruder, other, theirs["id"], "ИМПУЛЬС чужой")

    found = await client.get("/chats/search", params={"q": "иМПУЛЬС"}, headers=owner)
    assert found.status_code == 200, found.text
    hits = found.json()
    # The matching title first, then the message, each pointing at its chat and avatar.
    assert [(h["chat_id"], h["message_id"]) for h in hits] == [
        (life["id"], None),
        (physics["id"], said["message"]["id"]),
    ]
    assert hits[0]["avatar_name"] == "Boris" and hits[0]["snippet"] == "Жизнь и ИМПУЛЬС"
    message = hits[1]
    assert (message["avatar_id"], message["avatar_name"]) == (first, "Анна")
    assert message["chat_title"] == "Физика" and message["role"] == "user"
    assert "Импульс" in message["snippet"] and message["created_at"]

    # The intruder sees only their own, whatever the case.
    theirs_found = (
        await client.get("/chats/search", params={"q": "импульс"}, headers=intruder)
    ).json()
    assert {h["chat_id"] for h in theirs_found} == {theirs["id"]}
    assert len(theirs_found) == 2

    # Wildcards are plain characters.
    for q, expected in (("%", 1), ("_", 1), ("0% s", 1), ("%%", 0), ("g_t", 0)):
        hits = (await client.get("/chats/search", params={"q": q}, headers=owner)).json()
        assert len(hits) == expected, (q, hits)

    # Results are limited.
    for n in range(4):
        await _send(client, owner, first, physics["id"], f"импульс {n}")
    limited = await client.get("/chats/search", params={"q": "импульс", "limit": 3}, headers=owner)
    assert len(limited.json()) == 3


async def test_search_refuses_bad_queries_with_422(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    for params in (
        {},
        {"q": ""},
        {"q": "я" * 201},
        {"q": "a\x00b"},
        {"q": "ok", "limit": 0},
        {"q": "ok", "limit": 51},
        {"q": "ok", "limit": "many"},
    ):
        response = await client.get("/chats/search", params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert "detail" in response.json()
    assert (
        await client.get("/chats/search", params={"q": "я" * 200}, headers=headers)
    ).json() == []
    assert (await client.get("/chats/search", params={"q": "x"})).status_code == 401


def test_a_snippet_shows_the_match_in_a_long_message() -> None:
    text = "начало " * 30 + "ИСКОМОЕ слово" + " конец" * 30
    snippet = snippet_around(text, "искомое")
    assert "ИСКОМОЕ" in snippet and len(snippet) <= 120
    assert snippet.startswith("…") and snippet.endswith("…")
    assert snippet_around("short one", "one") == "short one"
