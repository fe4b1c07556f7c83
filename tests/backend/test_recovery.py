"""Embedded mode keeps data across restarts, and closes what a restart cut off."""

import uuid
from pathlib import Path

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.bus import bus_from_url

from tests import factories
from tests.backend.helpers import until
from tests.conftest import serve, stack_settings


async def test_restart_keeps_data_and_fails_what_was_in_flight(tmp_path: Path) -> None:
    settings = stack_settings("embedded", tmp_path, None)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url + "/api/v1") as client:
        headers = await factories.user(client)
        email = (await client.get("/users/me", headers=headers)).json()["email"]
        aid = (await factories.avatar(client, headers))["id"]
        done = (await factories.upload(client, headers, aid, [("n.txt", factories.TEXT)])).json()[0]
        await bus_from_url(settings.bus_url).publish(
            Topic.MATERIAL_STATUS, ev.MaterialProcessed(avatar_id=aid, material_id=done["id"])
        )
        await until(
            client,
            f"/avatars/{aid}/train/materials",
            headers,
            lambda ms: ms[0]["status"] == "processed",
        )
        waiting = (
            await factories.upload(client, headers, aid, [("m.txt", factories.TEXT)])
        ).json()[0]
        run = (await client.post(f"/avatars/{aid}/train/start", headers=headers)).json()
        chat = await factories.chat(client, headers, aid)
        msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
        reply_id = (await client.post(msgs, json={"message": "Привет"}, headers=headers)).json()[
            "response_id"
        ]

    # The same data folder; the in-process bus and state start empty, as after a real restart.
    restarted = settings.model_copy(update={"bus_url": f"memory://{uuid.uuid4().hex[:8]}"})
    async with serve(restarted) as url, httpx.AsyncClient(base_url=url + "/api/v1") as client:
        headers = await factories.login(client, email)
        avatar = (await client.get(f"/avatars/{aid}", headers=headers)).json()
        assert avatar["status"] == "failed" and "restarted" in avatar["status_detail"]
        status = (await client.get(f"/avatars/{aid}/train/status", headers=headers)).json()
        assert (status["run"]["id"], status["run"]["status"]) == (run["id"], "failed")
        reply = (await client.get(f"{msgs}/{reply_id}/response", headers=headers)).json()
        assert reply["status"] == "failed" and "send the message again" in reply["error"]
        materials = {
            m["id"]: m["status"]
            for m in (await client.get(f"/avatars/{aid}/train/materials", headers=headers)).json()
        }
        assert materials == {done["id"]: "processed", waiting["id"]: "failed"}
