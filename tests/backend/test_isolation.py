"""A user never sees or touches another user's avatars, chats, materials, replies or dubs."""

import uuid

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic

from tests import factories
from tests.conftest import Stack


async def test_other_users_ids_are_not_found(client: httpx.AsyncClient, stack: Stack) -> None:
    owner = await factories.user(client)
    avatar = await factories.avatar(client, owner)
    aid = avatar["id"]
    chat = await factories.chat(client, owner, aid)
    material = (await factories.upload(client, owner, aid, [("n.txt", factories.TEXT)])).json()[0]
    sent = (
        await client.post(
            f"/avatars/{aid}/chat/{chat['id']}/msgs", json={"message": "hi"}, headers=owner
        )
    ).json()
    reply_id = sent["response_id"]
    await stack.probe.publish(
        Topic.SAVE_RESPONSE, ev.SaveResponse(message_id=reply_id, generated_text="hello")
    )

    intruder = await factories.user(client)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    probes = [
        ("GET", f"/avatars/{aid}"),
        ("PUT", f"/avatars/{aid}"),
        ("DELETE", f"/avatars/{aid}"),
        ("GET", f"/avatars/{aid}/chat"),
        ("POST", f"/avatars/{aid}/chat"),
        ("GET", f"/avatars/{aid}/chat/{chat['id']}"),
        ("DELETE", f"/avatars/{aid}/chat/{chat['id']}"),
        ("GET", msgs),
        ("POST", msgs),
        ("GET", f"{msgs}/{reply_id}/response"),
        ("GET", f"{msgs}/{reply_id}/response/dub"),
        ("GET", f"{msgs}/{reply_id}/response/stream"),
        ("GET", f"/avatars/{aid}/train/materials"),
        ("GET", f"/avatars/{aid}/train/materials/{material['id']}/download"),
        ("DELETE", f"/avatars/{aid}/train/materials/{material['id']}"),
        ("POST", f"/avatars/{aid}/train/start"),
        ("POST", f"/avatars/{aid}/train/stop"),
        ("GET", f"/avatars/{aid}/train/status"),
        ("GET", f"/avatars/{aid}/versions"),
        ("PATCH", f"/avatars/{aid}/versions/{uuid.uuid4()}"),
        ("GET", f"/avatars/{aid}/portrait"),
        ("PUT", f"/avatars/{aid}/portrait"),
        ("DELETE", f"/avatars/{aid}/portrait"),
    ]
    for method, path in probes:
        writes = ("PUT", "POST", "PATCH")
        body = (
            {"name": "x", "title": "x", "message": "x", "note": "x"} if method in writes else None
        )
        theirs = await client.request(method, path, json=body, headers=intruder)
        missing = await client.request(
            method, path.replace(aid, str(uuid.uuid4())), json=body, headers=intruder
        )
        assert theirs.status_code == 404, (method, path, theirs.status_code)
        # Same answer as for an id that does not exist: nothing leaks.
        assert theirs.json() == missing.json() == {"detail": "Avatar not found"}, (method, path)

    upload = await factories.upload(client, intruder, aid, [("n.txt", factories.TEXT)])
    assert upload.status_code == 404
    assert (await client.get("/avatars", headers=intruder)).json() == []

    # The owner's things are intact.
    assert (await client.get(f"/avatars/{aid}", headers=owner)).status_code == 200
    assert len((await client.get(f"/avatars/{aid}/train/materials", headers=owner)).json()) == 1


async def test_ids_of_another_avatar_of_the_same_user_are_not_found(
    client: httpx.AsyncClient,
) -> None:
    owner = await factories.user(client)
    first = await factories.avatar(client, owner)
    second = await factories.avatar(client, owner, name="Other")
    chat = await factories.chat(client, owner, first["id"])
    material = (
        await factories.upload(client, owner, first["id"], [("n.txt", factories.TEXT)])
    ).json()[0]
    crossed_chat = await client.get(f"/avatars/{second['id']}/chat/{chat['id']}", headers=owner)
    assert crossed_chat.status_code == 404
    crossed_material = await client.get(
        f"/avatars/{second['id']}/train/materials/{material['id']}/download", headers=owner
    )
    assert crossed_material.status_code == 404
