"""What one material may cost the worker: sizes, a compression ratio, a file count, a time."""

from dataclasses import dataclass

from bishop_text.settings import TextSettings, get_settings

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    text_bytes: int
    unpacked_bytes: int
    compression_ratio: float
    archive_files: int
    export_json_bytes: int
    document_seconds: float

    @classmethod
    def from_settings(cls, settings: TextSettings | None = None) -> "Limits":
        """The `ingest_max_*` settings (BISHOP_INGEST_MAX_*); by default the environment's."""
        s = settings or get_settings()
        return cls(
            text_bytes=int(s.ingest_max_text_mib * MiB),
            unpacked_bytes=int(s.ingest_max_unpacked_mib * MiB),
            compression_ratio=s.ingest_max_compression_ratio,
            archive_files=s.ingest_max_archive_files,
            export_json_bytes=int(s.ingest_max_export_json_mib * MiB),
            document_seconds=s.ingest_max_document_minutes * 60,
        )


def size(n: float) -> str:
    """Bytes as a person reads them: "608 MiB", "1 GiB", "1.5 KiB"."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit:
            return f"{n / unit:.1f}".removesuffix(".0") + f" {name}"
    return f"{int(n)} bytes"


def duration(seconds: float) -> str:
    """A time limit as a person reads it: "30 seconds", "1.5 minutes"."""
    if seconds < 60:
        return f"{seconds:g} second" + ("" if seconds == 1 else "s")
    return f"{seconds / 60:.1f}".removesuffix(".0") + " minutes"
