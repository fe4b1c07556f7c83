"""Message actions: regenerate (alternatives), edit and resend, delete, voice again, the greeting
as a chat's first message, and failure reasons a user can read."""

import asyncio
import uuid
from typing import Any

import httpx
from bishop_contracts import events as ev
from bishop_contracts.layout import compressed_dub_key
from bishop_contracts.topics import Topic
from bishop_infra.storage import storage_from_url

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack


async def _chat(client: httpx.AsyncClient, headers: dict[str, str], **avatar: str) -> str:
    aid = (await factories.avatar(client, headers, **avatar))["id"]
    chat = await factories.chat(client, headers, aid)
    return f"/avatars/{aid}/chat/{chat['id']}/msgs"


async def _answer(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], msgs: str, rid: str, text: str
) -> dict[str, Any]:
    """Play the text worker: answer reply `rid` with `text` and wait until it is stored."""
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=rid, generated_text=text)
    )
    return await until(
        client, f"{msgs}/{rid}/response", headers, lambda r: r["status"] == "ready", ok_404=True
    )


async def _request_of(stack: Stack, rid: str) -> ev.InferenceResponse:
    event = await stack.probe.wait_for(
        lambda e: e.event == "inference_response" and str(e.message_id) == rid
    )
    assert isinstance(event, ev.InferenceResponse)
    return event


async def _exchange(
    client: httpx.AsyncClient,
    stack: Stack,
    headers: dict[str, str],
    msgs: str,
    text: str,
    reply: str,
) -> tuple[str, str]:
    sent = (await client.post(msgs, json={"message": text}, headers=headers)).json()
    await _answer(client, stack, headers, msgs, sent["response_id"], reply)
    return sent["message"]["id"], sent["response_id"]


async def test_regenerate_keeps_alternatives_and_later_turns_see_the_newest(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    question, first = await _exchange(client, stack, headers, msgs, "Привет", "Первый ответ")

    again = await client.post(f"{msgs}/{first}/response/regenerate", headers=headers)
    assert again.status_code == 201, again.text
    second = again.json()
    assert (second["status"], second["reply_to_id"]) == ("pending", question)
    # The regenerated request does not carry the alternative it replaces, nor its question.
    request = await _request_of(stack, second["id"])
    assert request.text == "Привет" and request.history == []
    # One reply at a time: a second regenerate while this one is written is refused.
    busy = await client.post(f"{msgs}/{first}/response/regenerate", headers=headers)
    assert busy.status_code == 409 and "finished" in busy.json()["detail"]
    await _answer(client, stack, headers, msgs, second["id"], "Второй ответ")

    history = (await client.get(msgs, headers=headers)).json()
    assert [(m["role"], m["text"]) for m in history] == [
        ("user", "Привет"),
        ("avatar", "Первый ответ"),
        ("avatar", "Второй ответ"),
    ]
    assert {m["reply_to_id"] for m in history[1:]} == {question}

    sent = (await client.post(msgs, json={"message": "Дальше"}, headers=headers)).json()
    later = await _request_of(stack, sent["response_id"])
    assert [(t.role, t.text) for t in later.history] == [
        ("user", "Привет"),
        ("avatar", "Второй ответ"),
    ]


async def test_edit_replaces_the_message_and_drops_what_followed(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    kept, kept_reply = await _exchange(client, stack, headers, msgs, "Один", "Раз")
    edited, _ = await _exchange(client, stack, headers, msgs, "Два", "Два ответ")
    await _exchange(client, stack, headers, msgs, "Три", "Три ответ")

    answer = await client.put(f"{msgs}/{edited}", json={"message": "Два, иначе"}, headers=headers)
    assert answer.status_code == 200, answer.text
    sent = answer.json()
    assert sent["message"]["id"] == edited and sent["message"]["text"] == "Два, иначе"
    request = await _request_of(stack, sent["response_id"])
    assert request.text == "Два, иначе"
    assert [(t.role, t.text) for t in request.history] == [("user", "Один"), ("avatar", "Раз")]
    history = (await client.get(msgs, headers=headers)).json()
    assert [m["id"] for m in history] == [kept, kept_reply, edited, sent["response_id"]]
    assert history[-1]["status"] == "pending"

    # While the new reply is written, a second edit is refused; a reply cannot be edited.
    busy = await client.put(f"{msgs}/{edited}", json={"message": "x"}, headers=headers)
    assert busy.status_code == 409
    await _answer(client, stack, headers, msgs, sent["response_id"], "Новый")
    reply_edit = await client.put(f"{msgs}/{kept_reply}", json={"message": "x"}, headers=headers)
    assert reply_edit.status_code == 409
    for bad in ({}, {"message": ""}, {"message": "x" * 8001}, {"message": 5}):
        assert (await client.put(f"{msgs}/{edited}", json=bad, headers=headers)).status_code == 422


async def test_delete_a_reply_or_a_message_with_its_replies(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    first, first_reply = await _exchange(client, stack, headers, msgs, "Один", "Раз")
    second, second_reply = await _exchange(client, stack, headers, msgs, "Два", "Два ответ")
    again = (
        await client.post(f"{msgs}/{second_reply}/response/regenerate", headers=headers)
    ).json()
    # A reply being written is not deleted under its writer.
    busy = await client.delete(f"{msgs}/{again['id']}", headers=headers)
    assert busy.status_code == 409
    await _answer(client, stack, headers, msgs, again["id"], "Два иначе")

    assert (await client.delete(f"{msgs}/{second_reply}", headers=headers)).status_code == 204
    ids = [m["id"] for m in (await client.get(msgs, headers=headers)).json()]
    assert ids == [first, first_reply, second, again["id"]]
    assert (await client.delete(f"{msgs}/{second}", headers=headers)).status_code == 204
    ids = [m["id"] for m in (await client.get(msgs, headers=headers)).json()]
    assert ids == [first, first_reply]
    assert (await client.delete(f"{msgs}/{second}", headers=headers)).status_code == 404


async def test_voice_again_after_a_failed_dub(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    _, rid = await _exchange(client, stack, headers, msgs, "Привет", "Ответ")
    early = await client.post(f"{msgs}/{rid}/response/dub/retry", headers=headers)
    assert early.status_code == 409  # its dub is still being made

    def voicing(e: ev.Event) -> bool:
        return e.event == "sound_inference" and str(e.message_id) == rid

    first = await stack.probe.wait_for(voicing)
    await stack.probe.publish(
        Topic.SAVE_RESPONSE_DUB,
        ev.DubFailed(
            message_id=rid,
            reason=f"synthesis failed: AudioError: avatars/{uuid.uuid4()}/voice/sample.wav",
        ),
    )
    failed = await until(
        client, f"{msgs}/{rid}/response", headers, lambda r: r["dub_status"] == "failed"
    )
    assert "avatars/" not in failed["error"] and "Error" not in failed["error"]

    again = await client.post(f"{msgs}/{rid}/response/dub/retry", headers=headers)
    assert again.status_code == 200, again.text
    assert (again.json()["dub_status"], again.json()["error"]) == ("pending", None)
    request = await stack.probe.wait_for(lambda e: voicing(e) and e.event_id != first.event_id)
    assert isinstance(request, ev.SoundInference) and request.text == "Ответ"
    twice = await client.post(f"{msgs}/{rid}/response/dub/retry", headers=headers)
    assert twice.status_code == 409


async def test_the_greeting_is_the_chats_first_message(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    msgs = await _chat(client, headers, greeting="Здравствуйте, **рад** видеть!")
    history = (await client.get(msgs, headers=headers)).json()
    assert [(m["role"], m["status"], m["text"], m["dub_status"]) for m in history] == [
        ("avatar", "ready", "Здравствуйте, **рад** видеть!", "none")
    ]
    # A greeting answers nothing: there is no other reply to ask for.
    regenerated = await client.post(
        f"{msgs}/{history[0]['id']}/response/regenerate", headers=headers
    )
    assert regenerated.status_code == 409
    silent = await _chat(client, headers)
    assert (await client.get(silent, headers=headers)).json() == []


async def test_failure_reasons_name_no_storage_path_id_or_exception(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    sent = (await client.post(msgs, json={"message": "Привет"}, headers=headers)).json()
    rid = sent["response_id"]
    path = f"avatars/{uuid.uuid4()}/{uuid.uuid4()}/versions/v1.tar.gz"
    await stack.probe.publish(
        Topic.SAVE_RESPONSE,
        ev.ResponseFailed(
            message_id=rid, reason=f"generation failed: ObjectNotFound: no such object {path}"
        ),
    )
    failed = await until(
        client, f"{msgs}/{rid}/response", headers, lambda r: r["status"] == "failed", ok_404=True
    )
    reason = failed["error"]
    assert "avatars/" not in reason and "ObjectNotFound" not in reason and "Retry" in reason
    listed = (await client.get(msgs, headers=headers)).json()
    assert listed[-1]["error"] == reason


async def test_no_one_else_touches_these_messages_and_bad_ids_are_404(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    owner = await factories.user(client)
    msgs = await _chat(client, owner)
    question, rid = await _exchange(client, stack, owner, msgs, "Привет", "Ответ")
    stranger = await factories.user(client)
    attempts = [
        ("POST", f"{msgs}/{rid}/response/regenerate", None),
        ("PUT", f"{msgs}/{question}", {"message": "чужое"}),
        ("DELETE", f"{msgs}/{rid}", None),
        ("DELETE", f"{msgs}/{question}", None),
        ("POST", f"{msgs}/{rid}/response/dub/retry", None),
    ]
    for method, path, body in attempts:
        answer = await client.request(method, path, json=body, headers=stranger)
        assert answer.status_code == 404, (method, path, answer.text)
    history = (await client.get(msgs, headers=owner)).json()
    assert [(m["id"], m["text"]) for m in history] == [(question, "Привет"), (rid, "Ответ")]

    for bad in ("nope", str(uuid.uuid4())):
        for method, path, body in [
            ("POST", f"{msgs}/{bad}/response/regenerate", None),
            ("PUT", f"{msgs}/{bad}", {"message": "x"}),
            ("DELETE", f"{msgs}/{bad}", None),
            ("POST", f"{msgs}/{bad}/response/dub/retry", None),
        ]:
            answer = await client.request(method, path, json=body, headers=owner)
            assert answer.status_code in (404, 422), (method, path, answer.text)
            assert "detail" in answer.json()


async def test_an_earlier_messages_new_alternative_stays_in_its_place(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """Q1→R1, Q2→R2, R1 regenerated (R1b, newer than Q2 by the clock), then Q3: the history
    answers Q1 with R1b before Q2; editing Q2 keeps R1b (it answers Q1, not Q2)."""
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    q1, r1 = await _exchange(client, stack, headers, msgs, "Вопрос один", "Ответ один")
    q2, _ = await _exchange(client, stack, headers, msgs, "Вопрос два", "Ответ два")
    again = (await client.post(f"{msgs}/{r1}/response/regenerate", headers=headers)).json()
    await _answer(client, stack, headers, msgs, again["id"], "Ответ один, снова")

    sent = (await client.post(msgs, json={"message": "Вопрос три"}, headers=headers)).json()
    request = await _request_of(stack, sent["response_id"])
    assert [(t.role, t.text) for t in request.history] == [
        ("user", "Вопрос один"),
        ("avatar", "Ответ один, снова"),
        ("user", "Вопрос два"),
        ("avatar", "Ответ два"),
    ]
    await _answer(client, stack, headers, msgs, sent["response_id"], "Ответ три")

    edited = await client.put(f"{msgs}/{q2}", json={"message": "Вопрос два?"}, headers=headers)
    assert edited.status_code == 200, edited.text
    request = await _request_of(stack, edited.json()["response_id"])
    assert [(t.role, t.text) for t in request.history] == [
        ("user", "Вопрос один"),
        ("avatar", "Ответ один, снова"),
    ]
    left = {(m["role"], m["text"]) for m in (await client.get(msgs, headers=headers)).json()}
    assert left == {
        ("user", "Вопрос один"),
        ("avatar", "Ответ один"),
        ("avatar", "Ответ один, снова"),  # listed in the order written, answering Q1
        ("user", "Вопрос два?"),
        ("avatar", ""),  # the new reply, pending
    }
    assert q1 and r1


async def test_a_long_chat_is_asked_with_its_last_messages_oldest_first(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """Eleven exchanges and the last reply regenerated: the next message is asked with the
    chat's last 20 messages (`BISHOP_CHAT_HISTORY_TURNS`), each message with its newest reply."""
    assert stack.settings.chat_history_turns == 20
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    for i in range(11):
        _, last = await _exchange(client, stack, headers, msgs, f"Вопрос {i}", f"Ответ {i}")
    again = (await client.post(f"{msgs}/{last}/response/regenerate", headers=headers)).json()
    await _answer(client, stack, headers, msgs, again["id"], "Ответ 10, снова")
    sent = (await client.post(msgs, json={"message": "Вопрос 11"}, headers=headers)).json()
    request = await _request_of(stack, sent["response_id"])
    expected = [
        (r, f"{w} {i}") for i in range(1, 11) for r, w in (("user", "Вопрос"), ("avatar", "Ответ"))
    ]
    expected[-1] = ("avatar", "Ответ 10, снова")
    assert [(t.role, t.text) for t in request.history] == expected


async def test_a_voice_that_arrives_for_a_deleted_reply_is_deleted(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    _, reply = await _exchange(client, stack, headers, msgs, "Привет", "Ответ")
    asked = await stack.probe.wait_for(
        lambda e: e.event == "sound_inference" and str(e.message_id) == reply
    )
    assert isinstance(asked, ev.SoundInference)
    assert (await client.delete(f"{msgs}/{reply}", headers=headers)).status_code == 204
    storage = storage_from_url(stack.settings.resolved_storage_url)
    key = asked.storage_url
    chunk = key.removesuffix(".wav") + "/0.wav"
    for stored in (key, compressed_dub_key(key), chunk):
        await storage.put_bytes(stored, b"RIFF....WAVE", "audio/wav")
    await stack.probe.publish(
        Topic.SAVE_RESPONSE_DUB,
        ev.SaveResponseDub(message_id=reply, dub_url=key, generated_text="Ответ"),
    )
    for _ in range(100):
        if not any([await storage.exists(k) for k in (key, compressed_dub_key(key), chunk)]):
            break
        await asyncio.sleep(0.1)
    assert not await storage.exists(key)
    assert not await storage.exists(compressed_dub_key(key)) and not await storage.exists(chunk)


async def test_two_regenerations_at_once_make_one_alternative(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    msgs = await _chat(client, headers)
    _, first = await _exchange(client, stack, headers, msgs, "Привет", "Ответ")
    answers = await asyncio.gather(
        *[client.post(f"{msgs}/{first}/response/regenerate", headers=headers) for _ in range(3)]
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409]
    replies = [m for m in (await client.get(msgs, headers=headers)).json() if m["role"] == "avatar"]
    assert len(replies) == 2
