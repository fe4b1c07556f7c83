import io
import zipfile

import httpx

from tests import factories
from tests.conftest import TEST_UPLOAD_LIMIT, Stack


async def test_upload_several_files_stored_under_the_thesis_layout(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    avatar = await factories.avatar(client, headers)
    wav = factories.wav_bytes()
    response = await factories.upload(
        client,
        headers,
        avatar["id"],
        [("notes.txt", factories.TEXT), ("lecture.md", b"# Title\n\nText")],
    )
    assert response.status_code == 201, response.text
    texts = response.json()
    assert [m["kind"] for m in texts] == ["text", "text"]
    voice = await factories.upload(
        client, headers, avatar["id"], [("sample.wav", wav)], "voice_synthesis"
    )
    assert voice.status_code == 201, voice.text
    assert voice.json()[0]["kind"] == "audio"
    assert voice.json()[0]["status"] == "uploaded"

    listed = (await client.get(f"/avatars/{avatar['id']}/train/materials", headers=headers)).json()
    assert {m["filename"]: m["type"] for m in listed} == {
        "notes.txt": "basic",
        "lecture.md": "basic",
        "sample.wav": "voice_synthesis",
    }
    downloaded = await client.get(voice.json()[0]["url"].removeprefix("/api/v1"), headers=headers)
    assert downloaded.status_code == 200
    assert downloaded.content == wav
    assert downloaded.headers["content-type"] == "audio/wav"

    announced = await stack.probe.wait_for(
        lambda e: e.event == "material_uploaded" and str(e.material_id) == voice.json()[0]["id"]
    )
    me = (await client.get("/users/me", headers=headers)).json()
    assert announced.url.startswith(f"users/{me['id']}/avatars/{avatar['id']}/audio/")
    assert announced.url.endswith(f"{voice.json()[0]['id']}.wav")


async def test_types_are_checked_by_content(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    avatar = await factories.avatar(client, headers)
    base = f"/avatars/{avatar['id']}/train/materials"

    disguised = await factories.upload(
        client, headers, avatar["id"], [("voice.wav", b"just some text")]
    )
    assert disguised.status_code == 415
    assert "not audio" in disguised.json()["detail"]
    binary = await factories.upload(
        client, headers, avatar["id"], [("blob.bin", bytes(range(256)) * 4)]
    )
    assert binary.status_code == 415
    exe = await factories.upload(
        client, headers, avatar["id"], [("run.exe", b"MZ\x90\x00" + bytes(300))]
    )
    assert exe.status_code == 415
    text_as_voice = await factories.upload(
        client, headers, avatar["id"], [("a.txt", b"hello")], "voice_synthesis"
    )
    assert text_as_voice.status_code == 415
    not_multipart = await client.post(
        f"/avatars/{avatar['id']}/train", json={"type": "basic"}, headers=headers
    )
    assert not_multipart.status_code == 415, not_multipart.text
    unknown_type = await factories.upload(
        client, headers, avatar["id"], [("a.txt", b"hello")], "poetry"
    )
    assert unknown_type.status_code == 422
    assert unknown_type.json()["detail"][0]["loc"] == ["body", "type"], unknown_type.text
    empty = await factories.upload(client, headers, avatar["id"], [("empty.txt", b"")])
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["msg"] == "empty.txt is empty", empty.text
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as z:
        z.writestr("notes.txt", "hi")
    not_export = await factories.upload(
        client, headers, avatar["id"], [("archive.zip", plain_zip.getvalue())]
    )
    assert not_export.status_code == 415
    # One bad file rejects the whole upload: nothing is stored.
    mixed = await factories.upload(
        client, headers, avatar["id"], [("ok.txt", factories.TEXT), ("bad.wav", b"text, not audio")]
    )
    assert mixed.status_code == 415
    assert (await client.get(base, headers=headers)).json() == []

    export = io.BytesIO()
    with zipfile.ZipFile(export, "w") as z:
        z.writestr("ChatExport/result.json", '{"messages": []}')
    ok = await factories.upload(
        client, headers, avatar["id"], [("telegram.zip", export.getvalue())]
    )
    assert ok.status_code == 201
    assert ok.json()[0]["kind"] == "archive"


async def test_oversize_upload_is_refused_while_streaming(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    avatar = await factories.avatar(client, headers)
    big = b"a" * (TEST_UPLOAD_LIMIT + 1024)
    response = await factories.upload(client, headers, avatar["id"], [("big.txt", big)])
    assert response.status_code == 413

    async def chunked():  # no Content-Length: the limit must hold while bytes arrive
        boundary = b"--XyZ"
        yield boundary + b'\r\nContent-Disposition: form-data; name="type"\r\n\r\nbasic\r\n'
        yield (
            boundary
            + b'\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        )
        for _ in range(TEST_UPLOAD_LIMIT // 65536 + 2):
            yield b"b" * 65536
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = await client.post(
        f"/avatars/{avatar['id']}/train/",
        content=chunked(),
        headers={**headers, "Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert streamed.status_code == 413
    assert (
        await client.get(f"/avatars/{avatar['id']}/train/materials", headers=headers)
    ).json() == []


async def test_delete_material(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    avatar = await factories.avatar(client, headers)
    material = (
        await factories.upload(client, headers, avatar["id"], [("n.txt", factories.TEXT)])
    ).json()[0]
    path = f"/avatars/{avatar['id']}/train/materials/{material['id']}"
    assert (await client.delete(path, headers=headers)).status_code == 204
    assert (await client.get(path + "/download", headers=headers)).status_code == 404
    assert (await client.delete(path, headers=headers)).status_code == 404
