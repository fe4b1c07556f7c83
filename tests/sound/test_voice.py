"""Voice samples in any common format become clean speech, or a reason the user sees."""

from pathlib import Path

import numpy as np
import pytest
from bishop_sound.audio import AudioError, read_wav, wav_bytes
from bishop_sound.voice import prepare

from tests.sound import media

RATE = 22050


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return media.speech_wav(tmp_path_factory.mktemp("voice") / "speech.wav")


@pytest.mark.parametrize(
    "suffix", [".wav", ".mp3", ".ogg", ".opus", ".flac", ".m4a", ".mp4", ".webm"]
)
def test_formats_become_normalised_mono(speech: Path, tmp_path: Path, suffix: str) -> None:
    if suffix in (".mp4", ".webm"):
        source = (
            media.video(tmp_path / f"clip{suffix}", speech)
            if suffix == ".mp4"
            else media.encode(media.video(tmp_path / "clip.mp4", speech), tmp_path / "clip.webm")
        )
    else:
        source = speech if suffix == ".wav" else media.encode(speech, tmp_path / f"speech{suffix}")
    sample = prepare(source, RATE)
    assert sample.rate == RATE
    assert sample.audio.dtype == np.float32 and sample.audio.ndim == 1
    assert 3.0 < sample.speech_seconds < 15.0
    assert np.isfinite(sample.audio).all()
    assert 0.5 < float(np.abs(sample.audio).max()) <= 0.9  # normalised, peak under -1 dBFS


def test_quiet_sample_is_brought_up_and_silence_trimmed(speech: Path, tmp_path: Path) -> None:
    audio, rate = read_wav(speech.read_bytes())
    padded = np.concatenate(
        [np.zeros(rate * 2, np.float32), audio * 0.05, np.zeros(rate * 2, np.float32)]
    )
    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(wav_bytes(padded, rate))
    sample = prepare(quiet, RATE)
    assert (
        len(sample.audio) < len(padded) * RATE / rate - 3.5 * RATE
    )  # most of the 4 s of silence is gone
    assert float(np.abs(sample.audio).max()) > 0.5


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda d: _write(d / "silent.wav", wav_bytes(np.zeros(22050 * 5, np.float32), 22050)),
            "silent",
        ),
        (lambda d: media.speech_wav(d / "short.wav", "Да."), "at least 3 s"),
        (
            lambda d: _write(d / "corrupt.wav", b"RIFF\x10\x00\x00\x00WAVEfmt garbage"),
            "could not be decoded",
        ),
        (lambda d: _write(d / "empty.ogg", b""), "could not be decoded"),
        (lambda d: media.video(d / "mute.mp4", None), "no audio track"),
    ],
    ids=["silent", "short", "corrupt", "empty", "video-without-audio"],
)
def test_unusable_samples_say_why(tmp_path: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AudioError, match=reason):
        prepare(make(tmp_path), RATE)


def test_too_long_sample_is_refused(speech: Path, tmp_path: Path) -> None:
    audio, rate = read_wav(speech.read_bytes())
    long = tmp_path / "long.wav"
    long.write_bytes(wav_bytes(np.tile(audio, 12), rate))
    with pytest.raises(AudioError, match="at most 60 s"):
        prepare(long, RATE)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
