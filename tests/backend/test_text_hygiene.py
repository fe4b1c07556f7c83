"""NUL, control characters and broken text: refused from users with a 422, cleaned from workers
before they are stored (Postgres rejects NUL: the reply used to be lost)."""

import asyncio
import uuid

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack
from tests.support.sse import read_events

CONTROL = "must not contain NUL or control characters"


def _refused(response: httpx.Response, field: str, message: str = CONTROL) -> None:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"][-1] == field
    assert message in error["msg"]


async def test_user_text_with_nul_or_control_characters_is_refused(
    client: httpx.AsyncClient,
) -> None:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    signup = {"email": email, "password": factories.PASSWORD, "full_name": "Ann"}
    for field, value in (("password", "pass\x00word-1"), ("full_name", "Ann\x07")):
        response = await client.post("/users/signup", json={**signup, field: value})
        _refused(response, field)
    bad_email = {**signup, "email": f"a\x00{email}"}
    assert (await client.post("/users/signup", json=bad_email)).status_code == 422

    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    persona = ("description", "personality", "scenario", "greeting", "instructions")
    for field in ("name", *persona):  # the language is one of a list (test_languages)
        response = await client.post(
            "/avatars", json={"name": "Ann", field: "ru\x00"}, headers=headers
        )
        _refused(response, field)
        response = await client.patch(f"/avatars/{aid}", json={field: "ru\x1b"}, headers=headers)
        _refused(response, field)
    for method in ("POST", "PATCH"):
        path = f"/avatars/{aid}/chat" + ("" if method == "POST" else f"/{chat['id']}")
        for title in ("New\x00", "two\nlines", "tab\t"):
            response = await client.request(method, path, json={"title": title}, headers=headers)
            _refused(response, "title")
    for text in ("a\x00b", "\x07", "esc\x1b[31m", "c1\x85"):
        _refused(await client.post(msgs, json={"message": text}, headers=headers), "message")

    # Nothing was stored.
    assert len((await client.get("/avatars", headers=headers)).json()) == 1
    avatar = (await client.get(f"/avatars/{aid}", headers=headers)).json()
    assert (avatar["name"], avatar["language"], avatar["description"]) == ("Ann", "ru", "")
    assert [c["title"] for c in (await client.get(f"/avatars/{aid}/chat", headers=headers)).json()]
    assert (await client.get(msgs, headers=headers)).json() == []

    # Line breaks and tabs are fine where text has lines.
    lines = "Первая строка\r\nвторая\tс табом\n"
    sent = await client.post(msgs, json={"message": lines}, headers=headers)
    assert sent.status_code == 201, sent.text
    assert sent.json()["message"]["text"] == lines
    updated = await client.patch(f"/avatars/{aid}", json={"scenario": lines}, headers=headers)
    assert updated.status_code == 200 and updated.json()["scenario"] == lines


async def test_a_lone_surrogate_is_refused(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    json_headers = {**headers, "Content-Type": "application/json"}
    # "\ud800" is valid JSON but no character: half of a UTF-16 pair, unencodable as UTF-8.
    for path, field in ((msgs, "message"), (f"/avatars/{aid}/chat", "title")):
        body = b'{"%s": "x\\ud800y"}' % field.encode()
        response = await client.post(path, content=body, headers=json_headers)
        _refused(response, field, "lone surrogate (U+D800)")
    signup = b'{"email": "s@example.com", "password": "long-enough", "full_name": "\\udc00"}'
    response = await client.post(
        "/users/signup", content=signup, headers={"Content-Type": "application/json"}
    )
    _refused(response, "full_name", "lone surrogate (U+DC00)")
    invalid_utf8 = await client.post(msgs, content=b'{"message": "\xff"}', headers=json_headers)
    assert invalid_utf8.status_code in (400, 422)
    assert (await client.get(msgs, headers=headers)).json() == []


async def test_control_characters_in_forms_and_queries_are_client_errors(
    client: httpx.AsyncClient,
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    upload = await client.post(
        f"/avatars/{aid}/train",
        data={"type": "basic\x00"},
        files=[("file", ("notes.txt", factories.TEXT))],
        headers=headers,
    )
    assert upload.status_code == 422, upload.text
    # A domain 422 has the validation-error shape, like FastAPI's own.
    [error] = upload.json()["detail"]
    assert error["loc"] == ["body", "type"] and "must be one of" in error["msg"], upload.text
    # NUL, an encoded surrogate, a byte that is not UTF-8.
    for query in ("before=%00", "limit=1%00", "before=%ED%A0%80", "before=%FF"):
        response = await client.get(f"{msgs}?{query}", headers=headers)
        assert response.status_code == 422, response.text
    assert (await client.get("/avatars?skip=%00", headers=headers)).status_code == 422
    # A raw multipart body: httpx would percent-encode the NUL in a file name.
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nbasic\r\n'
            f"--{boundary}\r\nContent-Disposition: form-data; "
            'name="file"; filename="a\x00b.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\n"
        ).encode()
        + factories.TEXT
        + f"\r\n--{boundary}--\r\n".encode()
    )
    named = await client.post(
        f"/avatars/{aid}/train",
        content=body,
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert named.status_code == 422, named.text
    assert "file name" in named.json()["detail"][0]["msg"], named.text
    assert (await client.get(f"/avatars/{aid}/train/materials", headers=headers)).json() == []
    login = await client.post(
        "/login/access-token", data={"username": "a\x00@example.com", "password": "x" * 8}
    )
    assert login.status_code == 400 and login.json()["detail"] == "Incorrect email or password"


async def _pending_reply(
    client: httpx.AsyncClient, headers: dict[str, str], aid: str
) -> tuple[str, str, str]:
    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    sent = (await client.post(msgs, json={"message": "Привет"}, headers=headers)).json()
    return msgs, sent["message"]["id"], sent["response_id"]


async def test_generated_text_is_stored_and_streamed_clean(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    me = (await client.get("/users/me", headers=headers)).json()
    msgs, msg_id, reply_id = await _pending_reply(client, headers, aid)

    stream = asyncio.create_task(read_events(client, f"{msgs}/{msg_id}/response/stream", headers))
    await asyncio.sleep(0.3)
    for index, piece in enumerate(("Здра\x00вст", "вуй\ufffd\x07те\r\n")):
        delta = ev.ResponseDelta(message_id=reply_id, index=index, text=piece)
        await stack.probe.publish(Topic.SAVE_RESPONSE, delta)
    generated = "Здра\x00вствуй\ufffd\x07те\r\nмир\x1b[0m\x9b"
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=reply_id, generated_text=generated)
    )
    reply = await until(
        client,
        f"{msgs}/{msg_id}/response",
        headers,
        lambda r: r["status"] == "ready",
        ok_404=True,
    )
    assert reply["text"] == "Здравствуйте\nмир[0m"
    dub_request = await stack.probe.wait_for(
        lambda e: e.event == "sound_inference" and str(e.message_id) == reply_id
    )
    assert dub_request.text == "Здравствуйте\nмир[0m"
    dub_url = f"users/{me['id']}/avatars/{aid}/dubs/{reply_id}.wav"
    await stack.probe.publish(
        Topic.SAVE_RESPONSE_DUB, ev.SaveResponseDub(message_id=reply_id, dub_url=dub_url)
    )
    events = await asyncio.wait_for(stream, 20)
    assert [d["text"] for k, d in events if k == "delta"] == ["Здравст", "вуйте\n"]
    assert [d["text"] for k, d in events if k == "text"] == ["Здравствуйте\nмир[0m"]

    # A dub that arrives first brings the text along: cleaned the same way.
    msgs, msg_id, reply_id = await _pending_reply(client, headers, aid)
    dub = ev.SaveResponseDub(
        message_id=reply_id,
        dub_url=f"users/{me['id']}/avatars/{aid}/dubs/{reply_id}.wav",
        generated_text="Пока\x00\ufffd\x7f!",
    )
    await stack.probe.publish(Topic.SAVE_RESPONSE_DUB, dub)
    reply = await until(
        client,
        f"{msgs}/{msg_id}/response",
        headers,
        lambda r: r["status"] == "ready",
        ok_404=True,
    )
    assert (reply["text"], reply["dub_status"]) == ("Пока!", "ready")
