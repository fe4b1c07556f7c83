"""Reply text to a dub in the avatar's voice: sentence by sentence, first audio first."""

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from bishop_contracts import events as ev
from bishop_contracts.events import derive_event_id
from bishop_contracts.languages import DEFAULT_LANGUAGE, LANGUAGES
from bishop_contracts.layout import COMPRESSED_DUB_TYPE, avatar_prefix_of, compressed_dub_key
from bishop_contracts.text import clean_generated
from bishop_contracts.topics import Topic
from bishop_infra.bus import Bus
from bishop_infra.faults import is_transient
from bishop_infra.storage import ObjectNotFound, Storage
from bishop_infra.worker import TempRoot

from bishop_sound.audio import AudioError, mp3_bytes, silence, wav_bytes
from bishop_sound.sentences import split_sentences
from bishop_sound.settings import SoundSettings
from bishop_sound.synth import Synthesizer
from bishop_sound.synth.base import StaleConditioning
from bishop_sound.voice import prepare

log = logging.getLogger("bishop.sound")
T = TypeVar("T")
PAUSE_SECONDS = 0.15


class VoiceUnavailable(Exception):
    """No voice to speak with; the message is shown to the user."""


class Dubber:
    """Handles `sound_inference` and voice-sample materials for one loaded backend."""

    def __init__(
        self,
        settings: SoundSettings,
        synth: Synthesizer,
        storage: Storage,
        bus: Bus,
        temp: TempRoot | None = None,
    ) -> None:
        self.settings = settings
        self.synth = synth
        self.storage = storage
        self.bus = bus
        self.temp = temp or TempRoot("ml-sound", settings.temp_dir)
        self._model_lock = asyncio.Lock()
        self._voices: OrderedDict[str, Any] = OrderedDict()
        self.conditionings_computed = 0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # One inference at a time, off the event loop so the consumer keeps heartbeating.
        async with self._model_lock:
            return await asyncio.to_thread(fn, *args)

    async def dub(
        self, event: ev.SoundInference, on_chunk: Callable[[int], Awaitable[None]] | None = None
    ) -> None:
        if await self.storage.exists(event.storage_url):
            # Redelivered after the dub was stored: announce it again, synthesise nothing.
            await self._announce(event, note=None)
            return
        # espeak and the tokenizers fail on NUL ("embedded null byte") and control characters.
        text = clean_generated(event.text).strip()
        if not text:
            await self._fail(event, "the reply text is empty")
            return
        try:
            conditioning, note = await self._voice(event)
        except VoiceUnavailable as exc:
            await self._fail(event, str(exc))
            return
        language, unspoken = self._language(event.language or DEFAULT_LANGUAGE)
        if unspoken:
            note = f"{note}; {unspoken}" if note else unspoken
        rate = self.synth.sample_rate
        pieces: list[np.ndarray] = []
        try:
            for index, sentence in enumerate(split_sentences(text, self.synth.max_chars)):
                audio = await self._run(self.synth.synthesize, sentence, language, conditioning)
                key = chunk_key(event.storage_url, index)
                await self._store(key, audio, rate)
                await self.bus.publish(
                    Topic.SAVE_RESPONSE_DUB,
                    ev.DubChunk(
                        event_id=derive_event_id(event.event_id, f"dub_chunk:{index}"),
                        message_id=event.message_id,
                        index=index,
                        chunk_url=key,
                        text=sentence,
                    ),
                )
                if on_chunk is not None:
                    await on_chunk(index)
                pieces += [audio, silence(PAUSE_SECONDS, rate)]
        except AudioError as exc:
            await self._fail(event, f"synthesis failed: {exc}")
            return
        except Exception as exc:
            if is_transient(exc):
                raise  # storage or bus down: the bus retries the event once it is back
            # A model error must not leave the reply waiting for a dub forever.
            log.exception("synthesis of %s crashed", event.message_id)
            await self._fail(event, f"synthesis failed: {type(exc).__name__}: {exc}")
            return
        whole = np.concatenate(pieces[:-1]) if pieces else silence(0.1, rate)
        await self._store(event.storage_url, whole, rate)
        await self._announce(event, note)

    async def _store(self, key: str, audio: np.ndarray, rate: int) -> None:
        """The WAV at `key` and the MP3 beside it; the MP3 first, because the WAV of the whole
        dub is what marks it done (see `dub`)."""
        try:
            compressed = await asyncio.to_thread(mp3_bytes, audio, rate)
        except (RuntimeError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
            # The WAV is the dub; without its MP3 the player falls back to the WAV.
            log.warning("no MP3 of %s: %s", key, exc)
        else:
            await self.storage.put_bytes(compressed_dub_key(key), compressed, COMPRESSED_DUB_TYPE)
        await self.storage.put_bytes(key, wav_bytes(audio, rate), "audio/wav")

    def _language(self, wanted: str) -> tuple[str, str | None]:
        """The language to speak, and a note if it is not the avatar's."""
        spoken = self.synth.languages
        if not spoken or wanted in spoken:
            return wanted, None
        fallback = self.settings.fallback_language
        instead = fallback if fallback in spoken else spoken[0]
        said, asked = LANGUAGES.get(instead, instead), LANGUAGES.get(wanted, wanted)
        return instead, f"spoken in {said}: this voice does not speak {asked}"

    async def _announce(self, event: ev.SoundInference, note: str | None) -> None:
        await self.bus.publish(
            Topic.SAVE_RESPONSE_DUB,
            ev.SaveResponseDub(
                event_id=derive_event_id(event.event_id, "save_response_dub"),
                message_id=event.message_id,
                dub_url=event.storage_url,
                generated_text=event.text,
                voice=note,
            ),
        )

    async def _fail(self, event: ev.SoundInference, reason: str) -> None:
        log.warning("dub of %s failed: %s", event.message_id, reason)
        await self.bus.publish(
            Topic.SAVE_RESPONSE_DUB,
            ev.DubFailed(
                event_id=derive_event_id(event.event_id, "dub_failed"),
                message_id=event.message_id,
                reason=reason,
            ),
        )

    async def _voice(self, event: ev.SoundInference) -> tuple[Any, str]:
        """The conditioning to speak with, and a note on whose voice it is."""
        if not self.synth.clones_voices:
            return (
                self.synth.preset(),
                f"{self.synth.name} voice ({type(self.synth).__name__}), not a cloned voice",
            )
        keys = event.voice_urls or ([event.base_voice_url] if event.base_voice_url else [])
        if not keys:
            return await self._preset("the avatar has no voice sample")
        try:
            return await self._cloned(keys), "cloned from the avatar's voice sample"
        except (AudioError, ObjectNotFound) as exc:
            reason = (
                "the voice sample is missing"
                if isinstance(exc, ObjectNotFound)
                else f"the voice sample is unusable: {exc}"
            )
            return await self._preset(reason)

    async def _preset(self, reason: str) -> tuple[Any, str]:
        if not self.settings.fallback_to_preset_voice:
            raise VoiceUnavailable(reason)
        return await self._run(self.synth.preset), f"preset voice: {reason}"

    async def _cloned(self, keys: list[str]) -> Any:
        version = hashlib.sha256("|".join([self.synth.name, *sorted(keys)]).encode()).hexdigest()[
            :16
        ]
        if version in self._voices:
            self._voices.move_to_end(version)
            return self._voices[version]
        try:
            prefix = avatar_prefix_of(keys[0])
        except ValueError as exc:
            raise AudioError(str(exc)) from None
        cache_key = f"{prefix}voice/{version}.{self.synth.name}.cond"
        try:
            conditioning = self.synth.loads(await self.storage.get_bytes(cache_key))
        except (ObjectNotFound, StaleConditioning):
            conditioning = await self._compute(keys)
            await self.storage.put_bytes(
                cache_key, self.synth.dumps(conditioning), "application/octet-stream"
            )
        self._voices[version] = conditioning
        while len(self._voices) > self.settings.conditioning_cache_size:
            self._voices.popitem(last=False)
        return conditioning

    async def _compute(self, keys: list[str]) -> Any:
        with self.temp.folder("bishop-voice-") as tmp:
            clean = []
            for n, key in enumerate(keys):
                source = Path(tmp) / f"source-{n}"
                await asyncio.to_thread(source.write_bytes, await self.storage.get_bytes(key))
                sample = await asyncio.to_thread(prepare, source, self.synth.input_rate)
                target = Path(tmp) / f"sample-{n}.wav"
                await asyncio.to_thread(target.write_bytes, wav_bytes(sample.audio, sample.rate))
                clean.append(target)
            conditioning = await self._run(self.synth.conditioning, clean)
        self.conditionings_computed += 1
        return conditioning

    async def check_sample(self, event: ev.MaterialUploaded) -> None:
        """Validate an uploaded voice sample so the user learns early if it cannot be used."""
        ids = {"avatar_id": event.avatar_id, "material_id": event.material_id}
        await self.bus.publish(
            Topic.MATERIAL_STATUS,
            ev.MaterialProcessing(event_id=derive_event_id(event.event_id, "processing"), **ids),
        )
        with self.temp.folder("bishop-sample-") as tmp:
            source = Path(tmp) / "sample"
            try:
                await asyncio.to_thread(source.write_bytes, await self.storage.get_bytes(event.url))
                sample = await asyncio.to_thread(prepare, source, self.synth.input_rate)
            except (AudioError, ObjectNotFound) as exc:
                reason = (
                    "the file is missing from storage"
                    if isinstance(exc, ObjectNotFound)
                    else str(exc)
                )
                await self.bus.publish(
                    Topic.MATERIAL_STATUS,
                    ev.MaterialFailed(
                        event_id=derive_event_id(event.event_id, "failed"), reason=reason, **ids
                    ),
                )
                return
        await self.bus.publish(
            Topic.MATERIAL_STATUS,
            ev.MaterialProcessed(
                event_id=derive_event_id(event.event_id, "processed"),
                stats={"speech_seconds": round(sample.speech_seconds, 2)},
                **ids,
            ),
        )


def chunk_key(dub_key: str, index: int) -> str:
    """`…/dubs/{message_id}.wav` -> `…/dubs/{message_id}/{index}.wav`."""
    return f"{dub_key.removesuffix('.wav')}/{index}.wav"
