"""Event contracts: every event round-trips, and the thesis's JSON still parses."""

import json
import typing
import uuid

import pytest
from bishop_contracts import events as ev
from bishop_contracts.topics import PARTITIONS, Topic

AID, MID = uuid.uuid4(), uuid.uuid4()
SAMPLES: list[ev.Event] = [
    ev.TrainStart(
        avatar_id=AID,
        run_id=uuid.uuid4(),
        train_materials=[
            ev.TrainMaterial(id=MID, type="basic", url="users/u/avatars/a/text/m.txt")
        ],
    ),
    ev.TrainStop(avatar_id=AID),
    ev.InferenceResponse(
        message_id=MID,
        text="Привет",
        persona=ev.Persona(name="Анна"),
        history=[ev.Turn(role="user", text="hi")],
    ),
    ev.ResponseCancel(message_id=MID, avatar_id=AID),
    ev.MaterialUploaded(
        avatar_id=AID,
        material_id=MID,
        type="voice_synthesis",
        kind="audio",
        url="k",
        filename="v.ogg",
    ),
    ev.SoundInference(storage_url="k.wav", base_voice_url=None, message_id=MID, text="Привет"),
    ev.SaveResponse(message_id=MID, generated_text="Ответ", passage_ids=["p1"]),
    ev.ResponseDelta(message_id=MID, index=0, text="От"),
    ev.ResponseFailed(message_id=MID, reason="oom"),
    ev.TrainProgress(
        avatar_id=AID,
        run_id=MID,
        step=1,
        total_steps=10,
        loss=2.0,
        eval_loss=2.1,
        tokens_per_second=900.0,
        eta_seconds=30,
    ),
    ev.TrainFinished(
        avatar_id=AID,
        run_id=MID,
        adapter_url="k/adapter",
        dataset_version="d1",
        config={"r": 16},
        metrics={"eval_loss": 1.2},
    ),
    ev.TrainFailed(avatar_id=AID, run_id=MID, reason="bad"),
    ev.TrainStopped(avatar_id=AID, run_id=MID),
    ev.SaveResponseDub(message_id=MID, dub_url="k.wav", generated_text="Ответ"),
    ev.DubChunk(message_id=MID, index=0, chunk_url="k.0.wav", text="Ответ."),
    ev.DubFailed(message_id=MID, reason="no voice"),
    ev.MaterialProcessing(avatar_id=AID, material_id=MID),
    ev.MaterialProcessed(
        avatar_id=AID, material_id=MID, transcript_url="k.txt", stats={"chars": 10}
    ),
    ev.MaterialFailed(avatar_id=AID, material_id=MID, reason="no audio track"),
    ev.HealthCheck(),
    ev.WorkerHealth(worker="ml-text", in_reply_to=MID),
    ev.DeadLetter(
        group="ml-text",
        topic="llm-inference",
        reason="ValueError: bad",
        original_event="inference_response",
        original_event_id=MID,
        original='{"event": "inference_response"}',
        message_id=MID,
    ),
]


def test_every_event_type_has_a_sample_and_a_topic() -> None:
    union = typing.get_args(typing.get_args(ev.AnyEvent)[0])
    assert {type(s) for s in SAMPLES} == set(union)
    on_topics = {cls for classes in ev.TOPIC_EVENTS.values() for cls in classes}
    assert on_topics == set(union)
    assert set(ev.TOPIC_EVENTS) == set(Topic) == set(PARTITIONS)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.event)
def test_round_trip(event: ev.Event) -> None:
    parsed = ev.parse_event(event.to_bytes())
    assert parsed == event
    assert parsed.schema_version == ev.SCHEMA_VERSION
    assert isinstance(parsed.event_id, uuid.UUID)


THESIS_SAMPLES = [
    {
        "event": "train_start",
        "avatar_id": str(AID),
        "train_materials": [
            {"id": str(MID), "type": "basic", "url": "users/u/avatars/a/text/x.txt"}
        ],
    },
    {"event": "train_stop", "avatar_id": str(AID)},
    {"event": "inference_response", "message_id": str(MID), "text": "User's message"},
    {
        "event": "sound_inference",
        "storage_url": "s",
        "base_voice_url": "v",
        "message_id": str(MID),
        "text": "gen",
    },
    {"event": "save_response", "message_id": str(MID), "generated_text": "gen"},
    {"event": "save_response_dub", "message_id": str(MID), "generated_text": "gen", "dub_url": "d"},
]


@pytest.mark.parametrize("sample", THESIS_SAMPLES, ids=lambda s: s["event"])
def test_thesis_messages_parse_with_a_stable_id(sample: dict) -> None:
    first = ev.parse_event(json.dumps(sample))
    again = ev.parse_event(json.dumps(sample).encode())
    assert first.event == sample["event"]
    assert first.event_id == again.event_id  # a redelivered thesis message is recognised
    other = ev.parse_event({**sample, "event_id": str(uuid.uuid4())})
    assert other.event_id != first.event_id


def test_events_made_in_code_get_fresh_ids() -> None:
    assert ev.HealthCheck().event_id != ev.HealthCheck().event_id
    progress = {"avatar_id": AID, "run_id": MID, "step": 1, "total_steps": 2}
    assert ev.TrainProgress(**progress).event_id != ev.TrainProgress(**progress).event_id


def test_derived_ids_are_stable() -> None:
    cause = uuid.uuid4()
    assert ev.derive_event_id(cause, "sound_inference") == ev.derive_event_id(
        cause, "sound_inference"
    )
    assert ev.derive_event_id(cause, "a") != ev.derive_event_id(cause, "b")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"event": "nope"}',
        b'{"event": "response_delta", "message_id": "x", "index": -1, "text": ""}',
    ],
)
def test_malformed_messages_raise_validation_errors(raw: bytes) -> None:
    with pytest.raises(ValueError):
        ev.parse_event(raw)


def test_partition_key_keeps_an_avatar_together() -> None:
    run = uuid.uuid4()
    assert ev.TrainProgress(avatar_id=AID, run_id=run, step=1, total_steps=2).key == str(AID)
    assert ev.TrainFinished(avatar_id=AID, run_id=run, adapter_url="k").key == str(AID)
    assert (
        ev.ResponseDelta(message_id=MID, index=0, text="a").key
        == ev.SaveResponse(message_id=MID, generated_text="a").key
    )
