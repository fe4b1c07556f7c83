"""What every worker process shares: settings for its connections, health answers, a run loop."""

import asyncio
import logging

from bishop_contracts.events import Event, HealthCheck, WorkerHealth, derive_event_id
from bishop_contracts.topics import Topic
from pydantic_settings import BaseSettings, SettingsConfigDict

from bishop_infra.bus import Bus, bus_from_url

log = logging.getLogger("bishop.worker")


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BISHOP_", env_file=".env", extra="ignore")

    bus_url: str = "memory://"
    storage_url: str = ""


def answer_health_checks(bus: Bus, worker: str, topic: Topic, group: str) -> None:
    """Reply to the backend's pings on `topic` with this worker's health."""

    async def reply(event: Event) -> None:
        if isinstance(event, HealthCheck):
            answer = WorkerHealth(
                event_id=derive_event_id(event.event_id, worker),
                worker=worker,
                in_reply_to=event.event_id,
            )
            await bus.publish(Topic.WORKER_HEALTH, answer)

    bus.subscribe(group, [topic], reply)


async def serve_forever(bus: Bus, worker: str) -> None:
    await bus.start()
    log.info("%s is consuming", worker)
    try:
        await asyncio.Event().wait()
    finally:
        await bus.stop()


def make_bus(settings: WorkerSettings, worker: str) -> Bus:
    return bus_from_url(settings.bus_url, client_id=f"bishop-{worker}")
