"""What every worker process shares: its bus, health answers, a run loop."""

import asyncio
import logging

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
    try:
        await asyncio.Event().wait()
    finally:
        await bus.stop()


def make_bus(settings: InfraSettings, worker: str) -> Bus:
    return bus_from_url(settings.bus_url, client_id=f"bishop-{worker}")
