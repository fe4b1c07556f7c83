"""Speech in audio and video is transcribed on a machine with no ffmpeg program: the text worker
decodes with the bundled ffmpeg and hands whisper samples, never a file name."""

from pathlib import Path

from bishop_text.ingest import MaterialError, extract
from bishop_text.ingest.media import SAMPLE_RATE, Transcriber, load_audio
from bishop_text.models import demo_whisper

from tests.sound import media
from tests.sound.bare import run_bare


def transcribe_wav_and_mp4(folder: str) -> dict:
    """In the bare child: a WAV and an MP4 through `extract` with the tiny whisper."""
    import whisper

    tmp = Path(folder)
    speech = media.speech_wav(tmp / "speech.wav")
    talk = media.video(tmp / "talk.mp4", speech)
    transcriber = Transcriber(str(demo_whisper(tmp / "whisper")), max_tokens=16)
    found: dict = {}
    for path, kind in ((speech, "audio"), (talk, "video")):
        seconds = load_audio(path).size / SAMPLE_RATE
        try:
            transcript = extract(path, kind, path.suffix[1:], "Анна", "ru", transcriber)
            found[path.suffix] = {"seconds": seconds, "text": transcript.text}
        except MaterialError as exc:
            found[path.suffix] = {"seconds": seconds, "reason": str(exc)}
    try:
        whisper.load_audio(str(speech))  # what the worker used to call: it runs `ffmpeg`
        found["whisper_load_audio"] = "ran"
    except FileNotFoundError:
        found["whisper_load_audio"] = "no ffmpeg"
    return found


def test_audio_and_video_are_transcribed_without_system_ffmpeg(tmp_path: Path) -> None:
    result = run_bare(
        f"{__name__}:transcribe_wav_and_mp4", str(tmp_path), result=tmp_path / "out.json"
    )
    assert isinstance(result, dict)
    # The PATH really hides ffmpeg: whisper's own decoder cannot run here.
    assert result["whisper_load_audio"] == "no ffmpeg"
    wav, mp4 = result[".wav"], result[".mp4"]
    assert 5.0 < wav["seconds"] < 15.0
    # The video's sound track, whole: media.video cuts the clip at 6 s.
    assert abs(mp4["seconds"] - min(wav["seconds"], 6.0)) < 0.5
    for transcript in (wav, mp4):
        # Random weights may hear nothing; the pipeline still ran to the end.
        assert isinstance(transcript.get("text"), str) or (
            transcript["reason"] == "no text could be found in the file"
        ), transcript
