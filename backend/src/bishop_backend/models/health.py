"""What the health check answers, with 200 when everything is up and 503 when not."""

from typing import Literal

from pydantic import BaseModel, ConfigDict


class DependencyHealth(BaseModel):
    status: Literal["ok", "down"]
    reason: str | None = None


class WorkerHealth(BaseModel):
    # Besides these, whatever the worker said about itself in its last heartbeat.
    model_config = ConfigDict(extra="allow")

    status: str  # ok, degraded, down, or unknown when the state store is unavailable
    reason: str | None = None
    seen_ago: float | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "unavailable"]
    down: list[str]
    database: Literal["ok", "down"]
    storage: Literal["ok", "down"]
    state: Literal["ok", "down"]
    bus: Literal["ok", "down"]
    dependencies: dict[str, DependencyHealth]
    workers: dict[str, WorkerHealth]
