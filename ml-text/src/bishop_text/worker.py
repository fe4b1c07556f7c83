"""The ml-text worker process: consumes its topics from the bus and reports back."""

import asyncio

from bishop_contracts.events import Event, HealthCheck
from bishop_contracts.topics import Topic
from bishop_infra.settings import InfraSettings
from bishop_infra.worker import health_answer, make_bus, serve_forever

WORKER = "ml-text"


async def run(settings: InfraSettings | None = None, group: str = WORKER) -> None:
    settings = settings or InfraSettings()
    bus = make_bus(settings, WORKER)

    async def handle(event: Event) -> None:
        if isinstance(event, HealthCheck):
            await bus.publish(Topic.WORKER_HEALTH, health_answer(WORKER, event))

    bus.subscribe(group, [Topic.HEALTH_CHECK_TEXT], handle)
    await serve_forever(bus, WORKER)


def main() -> None:
    asyncio.run(run())
