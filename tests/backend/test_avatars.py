import httpx

from tests import factories


async def test_avatar_crud_with_persona(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    created = await factories.avatar(
        client, headers, name="Лектор", description="Профессор физики", language="ru"
    )
    assert created["status"] == "available"
    assert created["active_version_id"] is None
    avatar_id = created["id"]

    listed = await client.get("/avatars", headers=headers)  # thesis path, no trailing slash
    assert [a["id"] for a in listed.json()] == [avatar_id]

    updated = await client.put(
        f"/avatars/{avatar_id}",
        json={"name": "Лектор 2", "personality": "терпеливый", "greeting": "Здравствуйте!"},
        headers=headers,
    )
    assert updated.status_code == 200
    body = updated.json()
    assert (body["name"], body["personality"], body["description"]) == (
        "Лектор 2",
        "терпеливый",
        "Профессор физики",
    )

    bad = await client.put(f"/avatars/{avatar_id}", json={"name": ""}, headers=headers)
    assert bad.status_code == 422
    assert (await client.get(f"/avatars/{avatar_id}/", headers=headers)).json()[
        "name"
    ] == "Лектор 2"

    assert (await client.delete(f"/avatars/{avatar_id}", headers=headers)).status_code == 204
    assert (await client.get(f"/avatars/{avatar_id}", headers=headers)).status_code == 404
    assert (await client.get("/avatars/", headers=headers)).json() == []


async def test_delete_avatar_removes_its_chats_materials_and_files(
    client: httpx.AsyncClient,
) -> None:
    headers = await factories.user(client)
    avatar = await factories.avatar(client, headers)
    chat = await factories.chat(client, headers, avatar["id"])
    uploaded = await factories.upload(
        client, headers, avatar["id"], [("notes.txt", factories.TEXT)]
    )
    download = uploaded.json()[0]["url"].removeprefix("/api/v1")
    assert (await client.get(download, headers=headers)).status_code == 200

    await client.delete(f"/avatars/{avatar['id']}", headers=headers)
    assert (
        await client.get(f"/avatars/{avatar['id']}/chat/{chat['id']}", headers=headers)
    ).status_code == 404
    assert (await client.get(download, headers=headers)).status_code == 404
