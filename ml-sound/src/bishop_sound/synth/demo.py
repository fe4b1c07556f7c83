"""The offline `demo` voice: espeak-ng. It works with no downloads and does NOT clone voices.

libespeak-ng and its data come from the espeakng-loader wheel and run in this process through
ctypes, so no espeak-ng program is needed on the machine."""

import ctypes
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bishop_sound.audio import AudioError
from bishop_sound.synth.base import Synthesizer

# Avatar language codes that espeak-ng names otherwise; the others it knows by the same code.
_VOICES = {"en": "en-us", "zh": "cmn"}

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # a missing data folder is an error code, not exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_EE_OK = 0
# int callback(short *wav, int numsamples, espeak_EVENT *events): 0 goes on, 1 aborts.
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """The library's one engine. Its state (voice, callback, buffers) is global and not
    thread-safe: callers hold `_lock` around every call."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text
            ctypes.c_size_t,  # size
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position
            ctypes.c_uint,  # flags
            ctypes.c_void_p,  # unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        data = espeakng_loader.get_data_path()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(data), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"libespeak-ng could not start with its data at {data}")
        self.lib = lib
        self.rate = rate
        self._chunks: list[np.ndarray] = []
        # Kept on the instance: the library calls it for as long as the process lives.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def speak(self, text: str, voice: str) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise AudioError(f"espeak-ng has no voice {voice!r}")
        self._chunks = []
        encoded = text.encode()
        code = self.lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
        )
        chunks, self._chunks = self._chunks, []
        if code != _EE_OK:
            raise AudioError(f"espeak-ng failed (error {code})")
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0


_lock = threading.Lock()
_engine: _Espeak | None = None


def _started() -> _Espeak:
    global _engine
    if _engine is None:
        _engine = _Espeak()
    return _engine


def espeak_rate() -> int:
    """The rate espeak-ng speaks at (22050 Hz); starts the library on first use."""
    with _lock:
        return _started().rate


def espeak(text: str, voice: str) -> np.ndarray:
    """Mono float32 speech at `espeak_rate()` in an espeak-ng voice ("ru", "en-us")."""
    # One engine per process, whichever synthesizer or test asks: one call at a time.
    with _lock:
        return _started().speak(text, voice)


class EspeakSynthesizer(Synthesizer):
    name = "demo"
    sample_rate = 22050
    input_rate = 22050
    clones_voices = False

    def __init__(self) -> None:
        try:
            rate = espeak_rate()
        except OSError as exc:
            raise RuntimeError(f"the demo voice's libespeak-ng could not be loaded: {exc}") from exc
        if rate != self.sample_rate:
            raise RuntimeError(f"libespeak-ng speaks at {rate} Hz, expected {self.sample_rate}")

    def conditioning(self, samples: list[Path]) -> Any:
        return None

    def preset(self) -> Any:
        return None

    def synthesize(self, text: str, language: str, conditioning: Any) -> np.ndarray:
        return espeak(text, _VOICES.get(language, language))

    def dumps(self, conditioning: Any) -> bytes:
        return b""

    def loads(self, data: bytes) -> Any:
        return None
