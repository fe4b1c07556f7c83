"""What every worker process shares: its bus, health answers, a run loop."""

import asyncio
import logging
import os
from pathlib import Path

from bishop_contracts.events import HealthCheck, WorkerHealth, derive_event_id

from bishop_infra.bus import Bus, bus_from_url
from bishop_infra.settings import InfraSettings

log = logging.getLogger("bishop.worker")


def health_answer(worker: str, ping: HealthCheck, **details: str) -> WorkerHealth:
    """This worker's answer to the backend's ping."""
    return WorkerHealth(
        event_id=derive_event_id(ping.event_id, worker),
        worker=worker,
        in_reply_to=ping.event_id,
        details=details,
    )


async def serve_forever(bus: Bus, worker: str) -> None:
    await bus.start()
    log.info("%s is consuming", worker)
    beat = asyncio.create_task(_heartbeat_file(os.environ.get("BISHOP_HEARTBEAT_FILE")))
    try:
        await asyncio.Event().wait()
    finally:
        beat.cancel()
        await bus.stop()


async def _heartbeat_file(path: str | None) -> None:
    """Touch a file while consuming: a container health check reads its age."""
    if not path:
        return
    while True:
        await asyncio.to_thread(Path(path).touch)
        await asyncio.sleep(10)


def make_bus(settings: InfraSettings, worker: str) -> Bus:
    return bus_from_url(settings.bus_url, client_id=f"bishop-{worker}")
