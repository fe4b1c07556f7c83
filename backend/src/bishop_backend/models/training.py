import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from bishop_backend.models.common import (
    UTCDateTime,
    created_field,
    empty_dict,
    empty_list,
    id_field,
    owner_field,
    updated_field,
)
from bishop_backend.models.text import SafeText


class RunStatus(StrEnum):
    QUEUED = "queued"
    TRAINING = "training"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.TRAINING)


class TrainingRunBase(SQLModel):
    status: str = Field(default=RunStatus.QUEUED, max_length=16)
    error: str | None = Field(default=None, max_length=2000)
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None


class TrainingRun(TrainingRunBase, table=True):
    id: uuid.UUID = id_field()
    avatar_id: uuid.UUID = owner_field("avatar")
    material_ids: list[str] = Field(
        default_factory=empty_list, sa_column=Column(JSON, nullable=False)
    )
    # [step, loss] points of the reported progress, for the loss chart
    loss_history: list[list[float]] = Field(
        default_factory=empty_list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = created_field()
    updated_at: datetime = updated_field()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TrainingRunPublic(TrainingRunBase):
    id: uuid.UUID
    avatar_id: uuid.UUID
    material_ids: list[str]
    loss_history: list[list[float]]
    created_at: datetime
    finished_at: datetime | None


class AdapterVersion(SQLModel, table=True):
    id: uuid.UUID = id_field()
    avatar_id: uuid.UUID = owner_field("avatar")
    run_id: uuid.UUID
    number: int
    adapter_key: str = Field(max_length=1024)
    dataset_version: str | None = Field(default=None, max_length=255)
    metrics: dict[str, float] = Field(
        default_factory=empty_dict, sa_column=Column(JSON, nullable=False)
    )
    config: dict[str, Any] = Field(
        default_factory=empty_dict, sa_column=Column(JSON, nullable=False)
    )
    note: str = Field(default="", max_length=500)
    created_at: datetime = created_field()


class MaterialName(SQLModel):
    id: uuid.UUID
    filename: str


class AdapterVersionPublic(SQLModel):
    id: uuid.UUID
    run_id: uuid.UUID
    number: int
    dataset_version: str | None
    metrics: dict[str, float]
    config: dict[str, Any]
    created_at: datetime
    active: bool
    note: str = ""
    # What the run was trained on; a material deleted since is left out.
    materials: list[MaterialName] = []
    material_count: int = 0


class VersionUpdate(SQLModel):
    note: SafeText = Field(max_length=500)


class ActiveVersionUpdate(SQLModel):
    version_id: uuid.UUID


class TrainingPhase(StrEnum):
    """What an active run is doing, from real signals (worker reports), never from timing."""

    WAITING = "waiting"  # queued; the text worker has not picked it up yet
    PREPARING = "preparing"  # the worker is building the dataset
    LOADING = "loading"  # the worker is loading the model
    TRAINING = "training"  # steps are being reported


class TrainingStatus(SQLModel):
    """The avatar's training state at a glance: what the train page shows."""

    avatar_status: str
    status_detail: str | None
    run: TrainingRunPublic | None
    active_version_id: uuid.UUID | None
    # None when no run is active.
    phase: TrainingPhase | None = None
