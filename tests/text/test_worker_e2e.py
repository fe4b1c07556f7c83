"""ml-text with the backend over the bus: upload -> processed -> train -> progress -> finished ->
a chat reply streamed from the new version."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from bishop_text import worker as text_worker
from bishop_text.settings import TextSettings

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack
from tests.support.sse import read_events
from tests.text.corpus import lecture


@pytest.fixture
async def text_running(stack: Stack, tmp_path: Path) -> AsyncIterator[TextSettings]:
    settings = TextSettings(
        _env_file=None,
        bus_url=stack.settings.bus_url,
        state_url=stack.settings.state_url,
        storage_url=stack.settings.resolved_storage_url,
        profile="demo",
        cache_dir=tmp_path / "cache",
        train_max_steps=6,
        max_new_tokens=12,
        temperature=0.0,
        batch_size=8,
        progress_every_seconds=0.0,
    )
    task = asyncio.create_task(text_worker.run(settings, group=f"ml-text-{uuid.uuid4().hex[:6]}"))
    yield settings
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_upload_train_and_chat_with_the_new_version(
    client: httpx.AsyncClient, stack: Stack, text_running: TextSettings
) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers, name="Анна", description="Учитель физики"))["id"]
    good = await factories.upload(client, headers, aid, [("lecture.txt", lecture().encode())])
    empty_text = await factories.upload(client, headers, aid, [("blank.md", b"# \n\n   \n")])
    materials = await until(
        client,
        f"/avatars/{aid}/train/materials",
        headers,
        lambda ms: all(m["status"] in ("processed", "failed") for m in ms),
        timeout=60,
    )
    status = {m["id"]: m for m in materials}
    assert status[good.json()[0]["id"]]["status"] == "processed"
    assert status[good.json()[0]["id"]]["has_transcript"]
    assert (
        status[empty_text.json()[0]["id"]]["status_detail"] == "no text could be found in the file"
    )

    run_id = (await client.post(f"/avatars/{aid}/train/start", headers=headers)).json()["id"]
    progress = await until(
        client,
        f"/avatars/{aid}/train/status",
        headers,
        lambda s: s["run"]["step"] > 0 or s["avatar_status"] != "queued",
        timeout=120,
    )
    avatar = await until(
        client,
        f"/avatars/{aid}",
        headers,
        lambda a: a["status"] != "training" and a["status"] != "queued",
        timeout=180,
    )
    assert avatar["status"] == "available", avatar
    versions = (await client.get(f"/avatars/{aid}/versions", headers=headers)).json()
    assert len(versions) == 1 and versions[0]["run_id"] == run_id and versions[0]["active"]
    assert versions[0]["config"]["kind"] == "full"
    assert versions[0]["dataset_version"]
    assert progress["run"]["total_steps"] == 6
    status = (await client.get(f"/avatars/{aid}/train/status", headers=headers)).json()
    assert status["run"]["status"] == "finished" and status["run"]["step"] == 6

    chat = await factories.chat(client, headers, aid)
    msgs = f"/avatars/{aid}/chat/{chat['id']}/msgs"
    sent = await client.post(msgs, json={"message": "Что такое импульс?"}, headers=headers)
    reply_id = sent.json()["response_id"]
    events = await asyncio.wait_for(
        read_events(client, f"{msgs}/{reply_id}/response/stream", headers), 120
    )
    reply = await until(
        client,
        f"{msgs}/{reply_id}/response",
        headers,
        lambda r: r["status"] != "pending",
        ok_404=True,
    )
    assert reply["status"] == "ready", reply
    assert reply["adapter_version_id"] == versions[0]["id"]
    assert reply["passage_ids"], "the reply should be grounded in the avatar's lecture"
    sources = reply["sources"]
    assert [s["rank"] for s in sources] == list(range(1, len(sources) + 1))
    assert {s["material_id"] for s in sources} == {good.json()[0]["id"]}
    assert {s["file_name"] for s in sources} == {"lecture.txt"}
    assert all(s["text"] for s in sources)
    text_event = next(d for k, d in events if k == "text")
    assert text_event["sources"] == sources
    deltas = [d["text"] for k, d in events if k == "delta"]
    final = next(d["text"] for k, d in events if k == "text")
    assert final == reply["text"]
    if deltas:
        assert "".join(deltas) == final
