"""The ml-sound worker process: consumes its topics from the bus and reports back."""

import asyncio

from bishop_contracts.topics import Topic
from bishop_infra.worker import WorkerSettings, answer_health_checks, make_bus, serve_forever

WORKER = "ml-sound"


async def run(settings: WorkerSettings | None = None, group: str = WORKER) -> None:
    settings = settings or WorkerSettings()
    bus = make_bus(settings, WORKER)
    answer_health_checks(bus, WORKER, Topic.HEALTH_CHECK_SOUND, group=group)
    await serve_forever(bus, WORKER)


def main() -> None:
    asyncio.run(run())
