"""Steps several backend tests share: processed materials, a queued run, waiting on the API."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic

from tests import factories
from tests.conftest import Stack


async def until(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    check: Callable[[Any], bool],
    *,
    ok_404: bool = False,
    timeout: float = 15.0,
) -> Any:
    """Poll a GET endpoint until `check` holds for its JSON."""
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(path, headers=headers)
            if response.status_code == 200 and check(response.json()):
                return response.json()
            assert response.status_code == 200 or (ok_404 and response.status_code == 404), (
                response.text
            )
            await asyncio.sleep(0.05)


async def processed_material(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], avatar_id: str
) -> dict:
    material = (
        await factories.upload(client, headers, avatar_id, [("notes.txt", factories.TEXT)])
    ).json()[0]
    await stack.probe.publish(
        Topic.MATERIAL_STATUS, ev.MaterialProcessed(avatar_id=avatar_id, material_id=material["id"])
    )
    await until(
        client,
        f"/avatars/{avatar_id}/train/materials",
        headers,
        lambda ms: any(m["id"] == material["id"] and m["status"] == "processed" for m in ms),
    )
    return material


async def started_run(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], avatar_id: str
) -> str:
    await processed_material(client, stack, headers, avatar_id)
    started = await client.post(f"/avatars/{avatar_id}/train/start", headers=headers)
    assert started.status_code == 202, started.text
    return started.json()["id"]
