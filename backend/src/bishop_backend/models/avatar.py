import uuid
from datetime import datetime
from enum import StrEnum

from bishop_contracts.languages import DEFAULT_LANGUAGE, Language
from sqlmodel import Field, SQLModel

from bishop_backend.models.common import created_field, id_field, owner_field
from bishop_backend.models.text import SafeLine, SafeText


class AvatarStatus(StrEnum):
    AVAILABLE = "available"
    QUEUED = "queued"
    TRAINING = "training"
    FAILED = "failed"


class Lifecycle(StrEnum):
    """Where an avatar stands, from its materials, runs and versions (what the UI shows)."""

    NO_MATERIALS = "no_materials"
    PROCESSING = "processing"  # text materials uploaded, none processed yet
    MATERIALS_READY = "materials_ready"
    TRAINING = "training"
    TRAINED = "trained"
    STOPPED = "stopped"  # the last run was stopped and no version exists
    FAILED = "failed"


class Persona(SQLModel):
    """How the avatar presents itself; sent with every reply request."""

    description: str = Field(default="", max_length=4000)
    personality: str = Field(default="", max_length=4000)
    scenario: str = Field(default="", max_length=4000)
    greeting: str = Field(default="", max_length=2000)
    instructions: str = Field(default="", max_length=8000)
    language: str = Field(default="ru", min_length=2, max_length=8)


class AvatarBase(Persona):
    name: str = Field(min_length=1, max_length=255)


class Avatar(AvatarBase, table=True):
    id: uuid.UUID = id_field()
    owner_id: uuid.UUID = owner_field("user")
    status: str = Field(default=AvatarStatus.AVAILABLE, max_length=16)
    status_detail: str | None = Field(default=None, max_length=2000)
    active_version_id: uuid.UUID | None = None
    portrait_key: str | None = Field(default=None, max_length=1024)
    created_at: datetime = created_field()


class AvatarCreate(AvatarBase):
    # The same fields as typed by a user: refused with control characters (see models.text);
    # stored avatars keep plain `str`, so that older rows still read back.
    name: SafeLine = Field(min_length=1, max_length=255)
    description: SafeText = Field(default="", max_length=4000)
    personality: SafeText = Field(default="", max_length=4000)
    scenario: SafeText = Field(default="", max_length=4000)
    greeting: SafeText = Field(default="", max_length=2000)
    instructions: SafeText = Field(default="", max_length=8000)
    language: Language = DEFAULT_LANGUAGE


class AvatarUpdate(SQLModel):
    name: SafeLine | None = Field(default=None, min_length=1, max_length=255)
    description: SafeText | None = Field(default=None, max_length=4000)
    personality: SafeText | None = Field(default=None, max_length=4000)
    scenario: SafeText | None = Field(default=None, max_length=4000)
    greeting: SafeText | None = Field(default=None, max_length=2000)
    instructions: SafeText | None = Field(default=None, max_length=8000)
    language: Language | None = None


class AvatarPublic(AvatarBase):
    id: uuid.UUID
    status: AvatarStatus
    status_detail: str | None
    active_version_id: uuid.UUID | None
    created_at: datetime
    lifecycle: Lifecycle = Lifecycle.NO_MATERIALS
    # The active version's number: "Trained (v2)".
    version_number: int | None = None
    has_portrait: bool = False
