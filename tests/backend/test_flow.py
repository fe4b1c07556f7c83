"""The whole flow of the Foundation issue, through the HTTP API, the test playing the workers."""

import asyncio
import io
import wave

import httpx
from bishop_contracts import events as ev
from bishop_contracts.topics import Topic
from bishop_infra.storage import storage_from_url

from tests import factories
from tests.backend.helpers import until
from tests.conftest import Stack
from tests.support.sse import read_events


async def test_signup_to_dub(client: httpx.AsyncClient, stack: Stack) -> None:
    probe = stack.probe
    headers = await factories.user(client)
    avatar = await factories.avatar(client, headers, description="Учитель физики", language="ru")
    aid = avatar["id"]
    base = f"/avatars/{aid}"

    # Upload a text and a voice sample; the workers report them processed.
    text = (await factories.upload(client, headers, aid, [("notes.txt", factories.TEXT)])).json()[0]
    voice = (
        await factories.upload(
            client, headers, aid, [("voice.wav", factories.wav_bytes())], "voice_synthesis"
        )
    ).json()[0]
    for material in (text, voice):
        await probe.wait_for(
            lambda e, m=material: e.event == "material_uploaded" and str(e.material_id) == m["id"]
        )
    me = (await client.get("/users/me", headers=headers)).json()
    transcript = f"users/{me['id']}/avatars/{aid}/transcripts/{text['id']}.txt"
    await probe.publish(
        Topic.MATERIAL_STATUS,
        ev.MaterialProcessed(avatar_id=aid, material_id=text["id"], transcript_url=transcript),
    )
    await probe.publish(
        Topic.MATERIAL_STATUS, ev.MaterialProcessed(avatar_id=aid, material_id=voice["id"])
    )
    await until(
        client,
        f"{base}/train/materials",
        headers,
        lambda ms: all(m["status"] == "processed" for m in ms),
    )

    # Start training: train_start carries the materials.
    started = await client.post(f"{base}/train/start", headers=headers)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    train_start = await probe.wait_for(
        lambda e: e.event == "train_start" and str(e.avatar_id) == aid
    )
    assert str(train_start.run_id) == run_id
    assert {str(m.id) for m in train_start.train_materials} == {text["id"], voice["id"]}
    assert (
        next(m for m in train_start.train_materials if str(m.id) == text["id"]).transcript_url
        == transcript
    )
    assert (await client.get(base, headers=headers)).json()["status"] == "queued"
    assert (await client.post(f"{base}/train/start", headers=headers)).status_code == 409

    await probe.publish(
        Topic.TRAIN_STATUS,
        ev.TrainProgress(
            avatar_id=aid, run_id=run_id, step=5, total_steps=10, loss=2.5, eta_seconds=3
        ),
    )
    status = await until(client, f"{base}/train/status", headers, lambda s: s["run"]["step"] == 5)
    assert status["avatar_status"] == "training"
    assert status["run"]["loss"] == 2.5
    assert status["run"]["loss_history"] == [[5.0, 2.5]]

    adapter = f"users/{me['id']}/avatars/{aid}/adapters/{run_id}"
    await probe.publish(
        Topic.TRAIN_STATUS,
        ev.TrainFinished(
            avatar_id=aid, run_id=run_id, adapter_url=adapter, metrics={"eval_loss": 1.9}
        ),
    )
    finished = await until(client, base, headers, lambda a: a["status"] == "available")
    versions = (await client.get(f"{base}/versions", headers=headers)).json()
    assert len(versions) == 1 and versions[0]["active"] and versions[0]["number"] == 1
    assert finished["active_version_id"] == versions[0]["id"]

    # Chat: the message goes to the text worker with the persona and the active adapter.
    chat = await factories.chat(client, headers, aid)
    msgs = f"{base}/chat/{chat['id']}/msgs"
    sent = await client.post(msgs, json={"message": "Что такое импульс?"}, headers=headers)
    assert sent.status_code == 201, sent.text
    user_msg_id, reply_id = sent.json()["message"]["id"], sent.json()["response_id"]
    request = await probe.wait_for(
        lambda e: e.event == "inference_response" and str(e.message_id) == reply_id
    )
    assert request.text == "Что такое импульс?"
    assert request.persona.description == "Учитель физики"
    assert request.adapter_url == adapter
    assert (await client.get(f"{msgs}/{user_msg_id}/response/", headers=headers)).status_code == 404
    assert (
        await client.get(f"{msgs}/{user_msg_id}/response/dub/", headers=headers)
    ).status_code == 404

    stream = asyncio.create_task(
        read_events(client, f"{msgs}/{user_msg_id}/response/stream", headers)
    )
    await asyncio.sleep(0.3)
    await probe.publish(
        Topic.SAVE_RESPONSE, ev.ResponseDelta(message_id=reply_id, index=0, text="Импульс — ")
    )
    await probe.publish(
        Topic.SAVE_RESPONSE, ev.ResponseDelta(message_id=reply_id, index=1, text="это mv.")
    )
    await probe.publish(
        Topic.SAVE_RESPONSE,
        ev.SaveResponse(
            message_id=reply_id, generated_text="Импульс — это mv.", passage_ids=["p1"]
        ),
    )

    # The reply is stored, and the dub is requested from the sound worker with the voice sample.
    polled = await until(
        client,
        f"{msgs}/{user_msg_id}/response/",
        headers,
        lambda r: r.get("status") == "ready",
        ok_404=True,
    )
    assert polled["text"] == "Импульс — это mv."
    dub_request = await probe.wait_for(
        lambda e: e.event == "sound_inference" and str(e.message_id) == reply_id
    )
    assert dub_request.base_voice_url == f"users/{me['id']}/avatars/{aid}/audio/{voice['id']}.wav"
    assert dub_request.text == "Импульс — это mv."

    wav = factories.wav_bytes(0.5, rate=24000)
    storage = storage_from_url(stack.settings.resolved_storage_url)
    await storage.put_bytes(dub_request.storage_url, wav, "audio/wav")
    await probe.publish(
        Topic.SAVE_RESPONSE_DUB,
        ev.SaveResponseDub(
            message_id=reply_id, dub_url=dub_request.storage_url, generated_text="Импульс — это mv."
        ),
    )

    events = await asyncio.wait_for(stream, 20)
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["delta", "delta"], kinds
    assert "".join(d["text"] for k, d in events if k == "delta") == "Импульс — это mv."
    assert kinds[-2:] == ["text", "dub"], kinds
    assert events[-2][1]["text"] == "Импульс — это mv."

    dub = await client.get(events[-1][1]["url"].removeprefix("/api/v1"), headers=headers)
    assert dub.status_code == 200
    assert dub.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(dub.content)) as parsed:
        assert parsed.getframerate() == 24000
    # The reply id works as well as the user's message id (thesis paths poll by message).
    assert (await client.get(f"{msgs}/{reply_id}/response/dub/", headers=headers)).content == wav

    # A late subscriber gets the finished state at once.
    late = await read_events(client, f"{msgs}/{reply_id}/response/stream", headers)
    assert [k for k, _ in late] == ["text", "dub"]
