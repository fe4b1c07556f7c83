"""Events on Bishop's bus.

Every event names its type in `event` (the thesis's discriminator), carries an `event_id` so a
handler that sees it twice does nothing the second time, and a `schema_version`. Object
locations (`url`, `storage_url`, `dub_url`, ...) are object keys in the shared storage, as in the
thesis's layout `users/{user_id}/avatars/{avatar_id}/...`.

The thesis's messages have no `event_id`; one is derived from the payload, so that a thesis
message delivered twice still counts once.
"""

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from bishop_contracts.topics import Topic

SCHEMA_VERSION = 1
_LEGACY_NAMESPACE = uuid.UUID("9b5f3c1e-5d0a-4f0e-9a59-6c1b7d2f8a10")


def derive_event_id(cause: uuid.UUID, label: str) -> uuid.UUID:
    """Id of the event that handling `cause` emits: the same every time the cause is redelivered."""
    return uuid.uuid5(cause, label)


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event: str
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: int = SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def key(self) -> str | None:
        """Partition key: one avatar's events stay in order on one partition."""
        for name in ("avatar_id", "message_id", "material_id"):
            value = getattr(self, name, None)
            if value is not None:
                return str(value)
        return None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


MaterialType = Literal["basic", "voice_synthesis"]


class TrainMaterial(BaseModel):
    id: uuid.UUID
    type: MaterialType
    url: str
    transcript_url: str | None = None


class Persona(BaseModel):
    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    greeting: str = ""
    instructions: str = ""
    language: str = "ru"


class Turn(BaseModel):
    role: Literal["user", "avatar"]
    text: str


# backend -> ml-text


class TrainStart(Event):
    event: Literal["train_start"] = "train_start"
    avatar_id: uuid.UUID
    train_materials: list[TrainMaterial]
    run_id: uuid.UUID | None = None
    language: str | None = None


class TrainStop(Event):
    event: Literal["train_stop"] = "train_stop"
    avatar_id: uuid.UUID
    run_id: uuid.UUID | None = None


class InferenceResponse(Event):
    event: Literal["inference_response"] = "inference_response"
    message_id: uuid.UUID
    text: str
    avatar_id: uuid.UUID | None = None
    chat_id: uuid.UUID | None = None
    persona: Persona | None = None
    history: list[Turn] = []
    adapter_url: str | None = None
    adapter_version_id: uuid.UUID | None = None
    # The avatar's processed materials, for retrieving passages relevant to the message.
    transcript_urls: list[str] = []


class ResponseCancel(Event):
    """The user stopped this reply: stop generating it. The backend has already stored what
    was streamed, so whatever the worker sends about it afterwards is ignored."""

    event: Literal["response_cancel"] = "response_cancel"
    message_id: uuid.UUID
    avatar_id: uuid.UUID


# backend -> workers


class MaterialUploaded(Event):
    event: Literal["material_uploaded"] = "material_uploaded"
    avatar_id: uuid.UUID
    material_id: uuid.UUID
    type: MaterialType
    kind: str
    url: str
    filename: str
    language: str | None = None
    # Whose words the material holds: in a chat export, the sender whose messages are answers.
    person: str | None = None


# backend -> ml-sound


class SoundInference(Event):
    event: Literal["sound_inference"] = "sound_inference"
    storage_url: str
    base_voice_url: str | None
    message_id: uuid.UUID
    text: str
    avatar_id: uuid.UUID | None = None
    language: str | None = None
    # Every usable voice sample of the avatar, newest first; the thesis sent only the one.
    voice_urls: list[str] = []


# ml-text -> backend


class Source(BaseModel):
    """A passage of the avatar's materials that a reply was built on."""

    material_id: uuid.UUID
    passage_id: str = Field(max_length=200)
    text: str = Field(max_length=4000)
    rank: int = Field(ge=1)  # 1: the passage the retrieval found most relevant


class SaveResponse(Event):
    event: Literal["save_response"] = "save_response"
    message_id: uuid.UUID
    generated_text: str
    passage_ids: list[str] = []
    # The passages the prompt held, best first (`passage_ids` are theirs, kept for old readers).
    sources: list[Source] = Field(default=[], max_length=20)
    adapter_version_id: uuid.UUID | None = None


class ResponseDelta(Event):
    event: Literal["response_delta"] = "response_delta"
    message_id: uuid.UUID
    index: int = Field(ge=0)
    text: str


class ResponseFailed(Event):
    event: Literal["response_failed"] = "response_failed"
    message_id: uuid.UUID
    reason: str


class LoggedLoss(BaseModel):
    step: int = Field(ge=0)
    loss: float | None = None
    eval_loss: float | None = None


class TrainProgress(Event):
    event: Literal["train_progress"] = "train_progress"
    avatar_id: uuid.UUID
    run_id: uuid.UUID
    step: int = Field(ge=0)
    total_steps: int = Field(ge=0)
    loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    # Before the first step: what the worker is doing (older workers send no phase).
    phase: Literal["preparing", "loading", "training"] | None = None
    # Every step logged since the previous report (reports are throttled; the loss chart
    # shows them all). Empty from older workers: the report's own step then stands alone.
    logged: list[LoggedLoss] = Field(default=[], max_length=1000)


class TrainFinished(Event):
    event: Literal["train_finished"] = "train_finished"
    avatar_id: uuid.UUID
    run_id: uuid.UUID
    adapter_url: str
    dataset_version: str | None = None
    config: dict[str, Any] = {}
    metrics: dict[str, float] = {}


class TrainFailed(Event):
    event: Literal["train_failed"] = "train_failed"
    avatar_id: uuid.UUID
    run_id: uuid.UUID
    reason: str


class TrainStopped(Event):
    event: Literal["train_stopped"] = "train_stopped"
    avatar_id: uuid.UUID
    run_id: uuid.UUID


# ml-sound -> backend


class SaveResponseDub(Event):
    event: Literal["save_response_dub"] = "save_response_dub"
    message_id: uuid.UUID
    dub_url: str
    generated_text: str | None = None
    # Whose voice it is, for the user: e.g. "cloned", or why a preset voice was used instead.
    voice: str | None = None


class DubChunk(Event):
    event: Literal["dub_chunk"] = "dub_chunk"
    message_id: uuid.UUID
    index: int = Field(ge=0)
    chunk_url: str
    text: str = ""


class DubFailed(Event):
    event: Literal["dub_failed"] = "dub_failed"
    message_id: uuid.UUID
    reason: str


# workers -> backend: material processing


class MaterialProcessing(Event):
    event: Literal["material_processing"] = "material_processing"
    avatar_id: uuid.UUID
    material_id: uuid.UUID


class Sender(BaseModel):
    """Someone who wrote in a chat export, and how many of its messages are theirs."""

    name: str = Field(max_length=255)
    messages: int = Field(ge=0)


# A chat export's senders, most messages first: the user picks the person among them.
Senders = Annotated[list[Sender], Field(max_length=50)]


class MaterialProcessed(Event):
    event: Literal["material_processed"] = "material_processed"
    avatar_id: uuid.UUID
    material_id: uuid.UUID
    transcript_url: str | None = None
    stats: dict[str, float] = {}
    senders: Senders = []


class MaterialFailed(Event):
    event: Literal["material_failed"] = "material_failed"
    avatar_id: uuid.UUID
    material_id: uuid.UUID
    reason: str
    # A chat export with no messages from the avatar's name: who wrote in it instead.
    senders: Senders = []


# health


class HealthCheck(Event):
    event: Literal["health_check"] = "health_check"


class WorkerHealth(Event):
    event: Literal["worker_health"] = "worker_health"
    worker: str
    status: Literal["ok", "degraded"] = "ok"
    in_reply_to: uuid.UUID | None = None
    details: dict[str, str] = {}


# dead letters


class DeadLetter(Event):
    """An event a consumer gave up on: malformed, or its handler failed for a reason that
    retrying cannot cure. Carries the ids of what it concerned, so that thing can be failed."""

    event: Literal["dead_letter"] = "dead_letter"
    group: str
    topic: str
    reason: str
    original_event: str | None = None
    original_event_id: uuid.UUID | None = None
    # The original message, cut to a size any broker accepts.
    original: str = ""
    avatar_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    material_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None


AnyEvent = Annotated[
    TrainStart
    | TrainStop
    | InferenceResponse
    | ResponseCancel
    | MaterialUploaded
    | SoundInference
    | SaveResponse
    | ResponseDelta
    | ResponseFailed
    | TrainProgress
    | TrainFinished
    | TrainFailed
    | TrainStopped
    | SaveResponseDub
    | DubChunk
    | DubFailed
    | MaterialProcessing
    | MaterialProcessed
    | MaterialFailed
    | HealthCheck
    | WorkerHealth
    | DeadLetter,
    Field(discriminator="event"),
]

_any_event: TypeAdapter[Event] = TypeAdapter(AnyEvent)

# Which events may travel on which topic; publishing anything else is a programming error.
TOPIC_EVENTS: dict[Topic, tuple[type[Event], ...]] = {
    Topic.LLM_TRAIN: (TrainStart, TrainStop),
    Topic.LLM_INFERENCE: (InferenceResponse,),
    Topic.LLM_CANCEL: (ResponseCancel,),
    Topic.SOUND_INFERENCE: (SoundInference,),
    Topic.MATERIALS: (MaterialUploaded,),
    Topic.SAVE_RESPONSE: (ResponseDelta, SaveResponse, ResponseFailed),
    Topic.TRAIN_STATUS: (TrainProgress, TrainFinished, TrainFailed, TrainStopped),
    Topic.SAVE_RESPONSE_DUB: (SaveResponseDub, DubChunk, DubFailed),
    Topic.MATERIAL_STATUS: (MaterialProcessing, MaterialProcessed, MaterialFailed),
    Topic.HEALTH_CHECK_TEXT: (HealthCheck,),
    Topic.HEALTH_CHECK_SOUND: (HealthCheck,),
    Topic.WORKER_HEALTH: (WorkerHealth,),
    Topic.DEAD_LETTER: (DeadLetter,),
}


def parse_event(raw: bytes | str | dict[str, Any]) -> Event:
    """Parse one bus message; raises ValueError (pydantic's ValidationError is one) if malformed.

    A message without `event_id` (the thesis's format) gets one derived from its content, so
    the same message delivered twice is recognised as one."""
    if not isinstance(raw, dict):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
    if isinstance(raw, dict) and "event_id" not in raw:
        canonical = json.dumps(raw, sort_keys=True, default=str)
        raw = {**raw, "event_id": uuid.uuid5(_LEGACY_NAMESPACE, canonical)}
    return _any_event.validate_python(raw)


def topic_accepts(topic: Topic, event: Event) -> bool:
    return isinstance(event, TOPIC_EVENTS[topic])
