"""The ml-sound worker process: voices replies and checks voice samples."""

import asyncio
import logging

from bishop_contracts.events import Event, HealthCheck, MaterialUploaded, SoundInference
from bishop_contracts.topics import Topic
from bishop_infra.storage import storage_from_url
from bishop_infra.worker import health_answer, make_bus, serve_forever

from bishop_sound.dubbing import Dubber
from bishop_sound.settings import SoundSettings
from bishop_sound.synth import load_synthesizer

WORKER = "ml-sound"
log = logging.getLogger("bishop.sound")


def build(settings: SoundSettings, group: str = WORKER) -> Dubber:
    """The worker's parts, subscribed to its topics (the bus is not started yet)."""
    bus = make_bus(settings, WORKER)
    storage = storage_from_url(settings.resolved_storage_url)
    dubber = Dubber(settings, load_synthesizer(settings), storage, bus)

    async def handle(event: Event) -> None:
        if isinstance(event, SoundInference):
            await dubber.dub(event)
        elif isinstance(event, MaterialUploaded) and event.type == "voice_synthesis":
            await dubber.check_sample(event)
        elif isinstance(event, HealthCheck):
            details = {
                "backend": dubber.synth.name,
                "clones_voices": str(dubber.synth.clones_voices),
            }
            await bus.publish(Topic.WORKER_HEALTH, health_answer(WORKER, event, **details))

    bus.subscribe(group, [Topic.SOUND_INFERENCE, Topic.MATERIALS, Topic.HEALTH_CHECK_SOUND], handle)
    return dubber


async def run(settings: SoundSettings | None = None, group: str = WORKER) -> None:
    settings = settings or SoundSettings()
    dubber = build(settings, group)
    await dubber.storage.ensure_ready()
    await serve_forever(dubber.bus, WORKER)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run())
