"""Where an avatar stands (lifecycle, training phase), its portrait and its versions' notes."""

import uuid

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.storage import storage_from_url

from tests import factories
from tests.backend.helpers import processed_material, until
from tests.conftest import Stack

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64


def image(body: bytes, kind: str = "image/png") -> dict:
    return {"file": ("portrait.png", body, kind)}


async def lifecycle(client: httpx.AsyncClient, headers: dict[str, str], aid: str) -> str:
    return (await client.get(f"/avatars/{aid}", headers=headers)).json()["lifecycle"]


async def phase(client: httpx.AsyncClient, headers: dict[str, str], aid: str, wanted: str) -> dict:
    return await until(
        client, f"/avatars/{aid}/train/status", headers, lambda s: s["phase"] == wanted
    )


async def test_lifecycle_from_materials_to_a_trained_version(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    created = await factories.avatar(client, headers)
    aid = created["id"]
    assert (created["lifecycle"], created["version_number"]) == ("no_materials", None)

    material = (
        await factories.upload(client, headers, aid, [("notes.txt", factories.TEXT)])
    ).json()
    assert await lifecycle(client, headers, aid) == "processing"
    await stack.probe.publish(
        Topic.MATERIAL_STATUS,
        ev.MaterialProcessed(avatar_id=aid, material_id=material[0]["id"]),
    )
    await until(client, f"/avatars/{aid}", headers, lambda a: a["lifecycle"] == "materials_ready")

    run_id = (await client.post(f"/avatars/{aid}/train/start", headers=headers)).json()["id"]
    assert await lifecycle(client, headers, aid) == "training"
    assert (await phase(client, headers, aid, "waiting"))["run"]["status"] == "queued"
    for reported in ("preparing", "loading"):
        await stack.probe.publish(
            Topic.TRAIN_STATUS,
            ev.TrainProgress(avatar_id=aid, run_id=run_id, step=0, total_steps=0, phase=reported),
        )
        status = await phase(client, headers, aid, reported)
        assert status["run"]["status"] == "queued"  # a phase is no step
    await stack.probe.publish(
        Topic.TRAIN_STATUS,
        ev.TrainProgress(
            avatar_id=aid,
            run_id=run_id,
            step=2,
            total_steps=6,
            loss=3.2,
            eval_loss=3.4,
            # Reports are throttled: the steps logged in between come with the next one.
            logged=[
                ev.LoggedLoss(step=1, loss=3.5),
                ev.LoggedLoss(step=2, loss=3.2),
                ev.LoggedLoss(step=2, eval_loss=3.4),
            ],
        ),
    )
    running = await phase(client, headers, aid, "training")
    assert running["run"]["step"] == 2
    assert running["run"]["loss_history"] == [[1.0, 3.5], [2.0, 3.2, 3.4]]
    # An older worker's report (no `logged`) adds its own step.
    await stack.probe.publish(
        Topic.TRAIN_STATUS,
        ev.TrainProgress(avatar_id=aid, run_id=run_id, step=3, total_steps=6, loss=3.0),
    )
    await until(
        client,
        f"/avatars/{aid}/train/status",
        headers,
        lambda s: s["run"]["loss_history"][-1] == [3.0, 3.0],
    )

    me = (await client.get("/users/me", headers=headers)).json()
    await stack.probe.publish(
        Topic.TRAIN_STATUS,
        ev.TrainFinished(
            avatar_id=aid,
            run_id=run_id,
            adapter_url=f"users/{me['id']}/avatars/{aid}/adapters/1",
            metrics={"train_loss": 3.0, "eval_loss": 3.1},
        ),
    )
    trained = await until(client, f"/avatars/{aid}", headers, lambda a: a["lifecycle"] == "trained")
    assert trained["version_number"] == 1
    assert (await client.get(f"/avatars/{aid}/train/status", headers=headers)).json()[
        "phase"
    ] is None
    # The list says the same as the avatar, for every avatar in one answer.
    other = await factories.avatar(client, headers, name="Second")
    listed = {a["id"]: a for a in (await client.get("/avatars", headers=headers)).json()}
    assert (listed[aid]["lifecycle"], listed[aid]["version_number"]) == ("trained", 1)
    assert listed[other["id"]]["lifecycle"] == "no_materials"

    versions = (await client.get(f"/avatars/{aid}/versions", headers=headers)).json()
    assert versions[0]["materials"] == [{"id": material[0]["id"], "filename": "notes.txt"}]
    assert versions[0]["material_count"] == 1 and versions[0]["note"] == ""
    assert versions[0]["created_at"]


async def test_stopped_run_reads_stopped(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    await processed_material(client, stack, headers, aid)
    assert (await client.post(f"/avatars/{aid}/train/start", headers=headers)).status_code == 202
    assert (await client.post(f"/avatars/{aid}/train/stop", headers=headers)).status_code == 200
    assert await lifecycle(client, headers, aid) == "stopped"
    status = (await client.get(f"/avatars/{aid}/train/status", headers=headers)).json()
    assert status["run"]["status"] == "stopped" and status["phase"] is None


async def test_failed_run_reads_failed(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    await processed_material(client, stack, headers, aid)
    run_id = (await client.post(f"/avatars/{aid}/train/start", headers=headers)).json()["id"]
    await stack.probe.publish(
        Topic.TRAIN_STATUS, ev.TrainFailed(avatar_id=aid, run_id=run_id, reason="out of memory")
    )
    await until(client, f"/avatars/{aid}", headers, lambda a: a["lifecycle"] == "failed")


async def test_portrait_upload_sniff_limits_and_isolation(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    path = f"/avatars/{aid}/portrait"
    assert (await client.get(path, headers=headers)).status_code == 404

    for body, kind in ((JPEG, "image/jpeg"), (WEBP, "image/webp"), (PNG, "image/png")):
        # The declared type is ignored: the bytes decide.
        put = await client.put(path, files=image(body, "text/plain"), headers=headers)
        assert put.status_code == 200, put.text
        assert put.json()["has_portrait"] is True
        got = await client.get(path, headers=headers)
        assert got.status_code == 200 and got.content == body
        assert got.headers["content-type"] == kind

    not_image = await client.put(path, files=image(b"<svg onload=alert(1)>"), headers=headers)
    assert not_image.status_code == 415
    assert "PNG, JPEG or WebP" in not_image.json()["detail"]
    assert (await client.put(path, files=image(b""), headers=headers)).status_code == 415
    no_file = await client.put(path, files={"other": ("a.png", PNG)}, headers=headers)
    assert no_file.status_code == 400
    too_big = await client.put(
        path, files=image(PNG + b"\x00" * (2 * 1024 * 1024)), headers=headers
    )
    assert too_big.status_code == 413
    assert "2 MB" in too_big.json()["detail"]
    assert (await client.get(path, headers=headers)).content == PNG  # the last good one stays

    stranger = await factories.user(client)
    assert (await client.get(path, headers=stranger)).status_code == 404
    assert (await client.put(path, files=image(PNG), headers=stranger)).status_code == 404
    assert (await client.delete(path, headers=stranger)).status_code == 404
    assert (await client.get(path, headers=headers)).status_code == 200

    assert (await client.delete(path, headers=headers)).status_code == 204
    assert (await client.get(path, headers=headers)).status_code == 404
    assert (await client.get(f"/avatars/{aid}", headers=headers)).json()["has_portrait"] is False


async def test_portrait_goes_with_its_avatar(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    me = (await client.get("/users/me", headers=headers)).json()
    prefixes = []
    for name in ("Gone", "Kept"):
        aid = (await factories.avatar(client, headers, name=name))["id"]
        await client.put(f"/avatars/{aid}/portrait", files=image(PNG), headers=headers)
        prefixes.append((aid, f"users/{me['id']}/avatars/{aid}/portrait/"))
    (gone, gone_prefix), (_, kept_prefix) = prefixes
    assert (await client.delete(f"/avatars/{gone}", headers=headers)).status_code == 204
    storage = storage_from_url(stack.settings.resolved_storage_url)
    assert await storage.delete_prefix(gone_prefix) == 0  # already removed with the avatar
    assert await storage.delete_prefix(kept_prefix) == 1  # (the count does see a portrait)


async def test_version_note_validation_and_isolation(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    await processed_material(client, stack, headers, aid)
    run_id = (await client.post(f"/avatars/{aid}/train/start", headers=headers)).json()["id"]
    me = (await client.get("/users/me", headers=headers)).json()
    await stack.probe.publish(
        Topic.TRAIN_STATUS,
        ev.TrainFinished(
            avatar_id=aid, run_id=run_id, adapter_url=f"users/{me['id']}/avatars/{aid}/a/1"
        ),
    )
    versions = await until(client, f"/avatars/{aid}/versions", headers, lambda vs: len(vs) == 1)
    path = f"/avatars/{aid}/versions/{versions[0]['id']}"

    noted = await client.patch(
        path, json={"note": "  first try, lecture notes only  "}, headers=headers
    )
    assert noted.status_code == 200, noted.text
    assert noted.json()["note"] == "first try, lecture notes only"
    assert noted.json()["materials"][0]["filename"] == "notes.txt"
    listed = (await client.get(f"/avatars/{aid}/versions", headers=headers)).json()
    assert listed[0]["note"] == "first try, lecture notes only"

    assert (await client.patch(path, json={"note": "x" * 501}, headers=headers)).status_code == 422
    assert (await client.patch(path, json={"note": "a\x00b"}, headers=headers)).status_code == 422
    assert (await client.patch(path, json={}, headers=headers)).status_code == 422
    assert (await client.patch(path, json={"note": "x" * 500}, headers=headers)).status_code == 200
    missing = f"/avatars/{aid}/versions/{uuid.uuid4()}"
    assert (await client.patch(missing, json={"note": "n"}, headers=headers)).status_code == 404

    stranger = await factories.user(client)
    assert (await client.patch(path, json={"note": "mine"}, headers=stranger)).status_code == 404
    their = (await factories.avatar(client, stranger))["id"]
    crossed = f"/avatars/{their}/versions/{versions[0]['id']}"
    assert (await client.patch(crossed, json={"note": "n"}, headers=stranger)).status_code == 404
    listed = (await client.get(f"/avatars/{aid}/versions", headers=headers)).json()
    assert listed[0]["note"] == "x" * 500
