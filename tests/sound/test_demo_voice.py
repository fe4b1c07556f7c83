"""The demo voice: libespeak-ng from its wheel, in this process, one call at a time."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from bishop_contracts.languages import LANGUAGES
from bishop_sound.audio import AudioError
from bishop_sound.synth.demo import EspeakSynthesizer

TEXTS = {"ru": "Здравствуйте, меня зовут Анна.", "en": "Hello, my name is Anna."}


@pytest.fixture(scope="module")
def demo() -> EspeakSynthesizer:
    return EspeakSynthesizer()


@pytest.mark.parametrize("language", list(LANGUAGES))  # every language an avatar may choose
def test_each_language_is_spoken(demo: EspeakSynthesizer, language: str) -> None:
    audio = demo.synthesize(TEXTS.get(language, "Bonjour, Hola, Hallo."), language, None)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.5 < audio.size / demo.sample_rate < 5.0
    assert np.isfinite(audio).all() and 0.1 < float(np.abs(audio).max()) <= 1.0


def test_calls_from_many_threads_do_not_mix(demo: EspeakSynthesizer) -> None:
    alone = {language: demo.synthesize(text, language, None) for language, text in TEXTS.items()}
    # The library's state is global: unserialised calls would share one sample buffer and one
    # voice. (Its output varies by a few samples from call to call, so lengths are compared.)
    jobs = list(TEXTS.items()) * 8
    with ThreadPoolExecutor(8) as pool:
        spoken = list(pool.map(lambda job: demo.synthesize(job[1], job[0], None), jobs))
    for (language, _), audio in zip(jobs, spoken, strict=True):
        assert abs(audio.size / alone[language].size - 1) < 0.01, language


def test_unknown_voice_is_an_audio_error(demo: EspeakSynthesizer) -> None:
    with pytest.raises(AudioError, match="no voice 'xx-none'"):
        demo.synthesize("Hello.", "xx-none", None)
    # The next call speaks in the voice it asks for, not what was left behind.
    assert demo.synthesize(TEXTS["en"], "en", None).size > 0
