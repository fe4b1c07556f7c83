import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic

from tests import factories
from tests.backend.helpers import started_run, until
from tests.conftest import Stack


async def test_start_needs_processed_materials(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    nothing = await client.post(f"/avatars/{aid}/train/start", headers=headers)
    assert nothing.status_code == 409
    assert "Upload training materials" in nothing.json()["detail"]

    voice_only = await factories.upload(
        client, headers, aid, [("v.wav", factories.wav_bytes())], "voice_synthesis"
    )
    assert voice_only.status_code == 201
    assert (await client.post(f"/avatars/{aid}/train/start", headers=headers)).status_code == 409

    material = (await factories.upload(client, headers, aid, [("n.txt", factories.TEXT)])).json()[0]
    pending = await client.post(f"/avatars/{aid}/train/start", headers=headers)
    assert pending.status_code == 409
    assert "still being processed" in pending.json()["detail"]

    await stack.probe.publish(
        Topic.MATERIAL_STATUS,
        ev.MaterialFailed(
            avatar_id=aid, material_id=material["id"], reason="the file is not valid UTF-8"
        ),
    )
    failed = await until(
        client,
        f"/avatars/{aid}/train/materials",
        headers,
        lambda ms: any(m["status"] == "failed" for m in ms),
    )
    assert (
        next(m for m in failed if m["id"] == material["id"])["status_detail"]
        == "the file is not valid UTF-8"
    )
    none_usable = await client.post(f"/avatars/{aid}/train/start", headers=headers)
    assert none_usable.status_code == 409
    assert "could be processed" in none_usable.json()["detail"]
    assert (await client.get(f"/avatars/{aid}", headers=headers)).json()["status"] == "available"
    assert (await client.get(f"/avatars/{aid}/train/status", headers=headers)).json()["run"] is None


async def test_stop_and_late_events_of_a_stopped_run(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    assert (await client.post(f"/avatars/{aid}/train/stop", headers=headers)).status_code == 409
    run_id = await started_run(client, stack, headers, aid)

    stopped = await client.post(f"/avatars/{aid}/train/stop", headers=headers)
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    stop_event = await stack.probe.wait_for(
        lambda e: e.event == "train_stop" and str(e.avatar_id) == aid
    )
    assert str(stop_event.run_id) == run_id
    assert (await client.get(f"/avatars/{aid}", headers=headers)).json()["status"] == "available"

    # The worker was mid-step: its progress and its finish for the stopped run change nothing.
    await stack.probe.publish(
        Topic.TRAIN_STATUS, ev.TrainProgress(avatar_id=aid, run_id=run_id, step=3, total_steps=9)
    )
    await stack.probe.publish(
        Topic.TRAIN_STATUS,
        ev.TrainFinished(avatar_id=aid, run_id=run_id, adapter_url=f"users/x/avatars/{aid}/a"),
    )
    await stack.probe.publish(Topic.TRAIN_STATUS, ev.TrainStopped(avatar_id=aid, run_id=run_id))
    # A run started afterwards proves the events above were consumed (one partition per avatar).
    second = await client.post(f"/avatars/{aid}/train/start", headers=headers)
    assert second.status_code == 202
    await stack.probe.publish(
        Topic.TRAIN_STATUS,
        ev.TrainFailed(avatar_id=aid, run_id=second.json()["id"], reason="CUDA out of memory"),
    )
    avatar = await until(client, f"/avatars/{aid}", headers, lambda a: a["status"] == "failed")
    assert avatar["status_detail"] == "CUDA out of memory"
    assert (await client.get(f"/avatars/{aid}/versions", headers=headers)).json() == []
    status = (await client.get(f"/avatars/{aid}/train/status", headers=headers)).json()
    assert status["run"]["status"] == "failed"


async def test_versions_switch_between_runs(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    me = (await client.get("/users/me", headers=headers)).json()
    prefix = f"users/{me['id']}/avatars/{aid}/adapters"
    for n in (1, 2):
        run_id = (
            await started_run(client, stack, headers, aid)
            if n == 1
            else (await client.post(f"/avatars/{aid}/train/start", headers=headers)).json()["id"]
        )
        await stack.probe.publish(
            Topic.TRAIN_STATUS,
            ev.TrainFinished(
                avatar_id=aid, run_id=run_id, adapter_url=f"{prefix}/{n}", metrics={"loss": 1.0 / n}
            ),
        )
        await until(client, f"/avatars/{aid}/versions", headers, lambda vs, n=n: len(vs) == n)
    await until(client, f"/avatars/{aid}", headers, lambda a: a["status"] == "available")
    versions = (await client.get(f"/avatars/{aid}/versions", headers=headers)).json()
    assert [v["number"] for v in versions] == [1, 2]
    assert [v["active"] for v in versions] == [False, True]

    switched = await client.put(
        f"/avatars/{aid}/versions/active", json={"version_id": versions[0]["id"]}, headers=headers
    )
    assert switched.json()["active_version_id"] == versions[0]["id"]
    chat = await factories.chat(client, headers, aid)
    reply_id = (
        await client.post(
            f"/avatars/{aid}/chat/{chat['id']}/msgs", json={"message": "hi"}, headers=headers
        )
    ).json()["response_id"]
    request = await stack.probe.wait_for(
        lambda e: e.event == "inference_response" and str(e.message_id) == reply_id
    )
    assert request.adapter_url == f"{prefix}/1"

    other = await factories.avatar(client, headers, name="Other")
    crossed = await client.put(
        f"/avatars/{other['id']}/versions/active",
        json={"version_id": versions[1]["id"]},
        headers=headers,
    )
    assert crossed.status_code == 404
