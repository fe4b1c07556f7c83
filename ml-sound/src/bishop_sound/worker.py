"""The ml-sound worker process: voices replies and checks voice samples."""

import asyncio
import logging

from bishop_contracts.events import Event, HealthCheck, MaterialUploaded, SoundInference
from bishop_contracts.topics import Topic
from bishop_infra.handled import HandledEvents
from bishop_infra.state import state_from_url
from bishop_infra.storage import storage_from_url
from bishop_infra.worker import TempRoot, health_answer, make_bus, run_process, serve_forever

from bishop_sound.dubbing import Dubber
from bishop_sound.settings import SoundSettings
from bishop_sound.synth import load_synthesizer

WORKER = "ml-sound"
log = logging.getLogger("bishop.sound")


def _answered_every_time(event: Event) -> bool:
    """Events not remembered as handled: health checks (cheap, and each ping wants an answer)
    and the materials this worker ignores (nothing to remember)."""
    if isinstance(event, MaterialUploaded):
        return event.type != "voice_synthesis"
    return isinstance(event, HealthCheck)


def build(settings: SoundSettings, group: str = WORKER) -> Dubber:
    """The worker's parts, subscribed to its topics (the bus is not started yet)."""
    bus = make_bus(settings, WORKER)
    storage = storage_from_url(settings.resolved_storage_url)
    temp = TempRoot(WORKER, settings.temp_dir)
    dubber = Dubber(settings, load_synthesizer(settings), storage, bus, temp)
    handled = HandledEvents(state_from_url(settings.state_url), group)

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

    bus.subscribe(
        group,
        [Topic.SOUND_INFERENCE, Topic.MATERIALS, Topic.HEALTH_CHECK_SOUND],
        handled.once(handle, skip=_answered_every_time),
    )
    return dubber


async def run(
    settings: SoundSettings | None = None, group: str = WORKER, *, own_process: bool = False
) -> None:
    """Serve until cancelled; `own_process`: this worker is the whole process (`main`)."""
    settings = settings or SoundSettings()
    dubber = build(settings, group)
    if own_process:
        dubber.temp.use_for_process()
    # Beside serving, not before it: what dead workers left is no reason to wait.
    sweeping = asyncio.create_task(asyncio.to_thread(dubber.temp.sweep))
    try:
        await dubber.storage.ensure_ready()
        await serve_forever(dubber.bus, WORKER)
    finally:
        await asyncio.gather(sweeping, return_exceptions=True)
        await asyncio.to_thread(dubber.temp.remove)


def main() -> None:
    run_process(lambda: run(own_process=True))
