"""A chat export whose senders do not include the avatar's name: the senders the worker found
are stored and shown, and the user picks the person, which has the export read again."""

import json
import uuid

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack

EXPORT = json.dumps(
    {"messages": [{"id": 1, "type": "message", "from": "Ваня", "text": "Привет"}]},
    ensure_ascii=False,
).encode()
SENDERS = [ev.Sender(name="Аня Петрова", messages=12), ev.Sender(name="Ваня", messages=9)]


async def _refused_export(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], aid: str
) -> dict:
    """An uploaded export that the worker refused for want of the avatar's name."""
    material = (await factories.upload(client, headers, aid, [("result.json", EXPORT)])).json()[0]
    await stack.probe.publish(
        Topic.MATERIAL_STATUS,
        ev.MaterialFailed(
            avatar_id=aid,
            material_id=material["id"],
            reason="the export has no messages from 'Ann': choose who the avatar is",
            senders=SENDERS,
        ),
    )
    materials = await until(
        client,
        f"/avatars/{aid}/train/materials",
        headers,
        lambda ms: any(m["id"] == material["id"] and m["status"] == "failed" for m in ms),
    )
    return next(m for m in materials if m["id"] == material["id"])


async def test_senders_are_stored_and_the_chosen_one_is_read_again(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    failed = await _refused_export(client, stack, headers, aid)
    assert failed["senders"] == [
        {"name": "Аня Петрова", "messages": 12},
        {"name": "Ваня", "messages": 9},
    ]
    assert failed["sender"] is None
    path = f"/avatars/{aid}/train/materials/{failed['id']}/reprocess"

    unknown = await client.post(path, json={"sender": "Пётр"}, headers=headers)
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["detail"][0]["loc"] == ["body", "sender"]
    assert "Аня Петрова" in unknown.json()["detail"][0]["msg"]
    for bad in ({}, {"sender": ""}, {"sender": "x" * 256}, {"sender": 5}):
        assert (await client.post(path, json=bad, headers=headers)).status_code == 422, bad

    chosen = await client.post(path, json={"sender": "Аня Петрова"}, headers=headers)
    assert chosen.status_code == 202, chosen.text
    assert chosen.json()["status"] == "uploaded"
    assert chosen.json()["sender"] == "Аня Петрова"
    assert chosen.json()["status_detail"] is None
    # The same stored file goes to the worker again, with the chosen sender as the person.
    again = await stack.probe.wait_for(
        lambda e: (
            e.event == "material_uploaded"
            and str(e.material_id) == failed["id"]
            and e.person == "Аня Петрова"
        )
    )
    first = stack.probe.all(
        lambda e: e.event == "material_uploaded" and str(e.material_id) == failed["id"]
    )[0]
    assert again.url == first.url and again.event_id != first.event_id
    # While it is read again, a second choice waits.
    busy = await client.post(path, json={"sender": "Ваня"}, headers=headers)
    assert busy.status_code == 409, busy.text

    await stack.probe.publish(
        Topic.MATERIAL_STATUS,
        ev.MaterialProcessed(avatar_id=aid, material_id=failed["id"], senders=SENDERS),
    )
    materials = await until(
        client,
        f"/avatars/{aid}/train/materials",
        headers,
        lambda ms: ms[0]["status"] == "processed",
    )
    assert materials[0]["sender"] == "Аня Петрова"
    assert [s["name"] for s in materials[0]["senders"]] == ["Аня Петрова", "Ваня"]


async def test_a_material_without_senders_cannot_be_reprocessed(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    material = (await factories.upload(client, headers, aid, [("n.txt", factories.TEXT)])).json()[0]
    assert material["senders"] == []
    refused = await client.post(
        f"/avatars/{aid}/train/materials/{material['id']}/reprocess",
        json={"sender": "Ann"},
        headers=headers,
    )
    assert refused.status_code == 422, refused.text


async def test_another_users_export_is_not_found(client: httpx.AsyncClient, stack: Stack) -> None:
    owner = await factories.user(client)
    aid = (await factories.avatar(client, owner))["id"]
    material = await _refused_export(client, stack, owner, aid)
    intruder = await factories.user(client)
    path = f"/avatars/{aid}/train/materials/{material['id']}/reprocess"
    theirs = await client.post(path, json={"sender": "Ваня"}, headers=intruder)
    missing = await client.post(
        path.replace(material["id"], str(uuid.uuid4())), json={"sender": "Ваня"}, headers=owner
    )
    assert theirs.status_code == 404 and theirs.json() == {"detail": "Avatar not found"}
    assert missing.status_code == 404 and missing.json() == {"detail": "Material not found"}
    # Their attempt changed nothing.
    listed = (await client.get(f"/avatars/{aid}/train/materials", headers=owner)).json()
    assert listed[0]["status"] == "failed" and listed[0]["sender"] is None


async def test_a_refused_batch_names_the_file(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    files = [
        ("notes.txt", factories.TEXT),
        ("blob.bin", bytes(range(256)) * 4),
        ("more.txt", b"more"),
    ]
    mixed = await factories.upload(client, headers, aid, files)
    assert mixed.status_code == 415, mixed.text
    assert mixed.json()["detail"].startswith("blob.bin:"), mixed.text
    # The batch stays atomic for API clients: nothing of it was stored.
    assert (await client.get(f"/avatars/{aid}/train/materials", headers=headers)).json() == []
    empty = await factories.upload(client, headers, aid, [("ok.txt", b"ok"), ("void.txt", b"")])
    assert empty.status_code == 422 and "void.txt" in empty.json()["detail"][0]["msg"]
