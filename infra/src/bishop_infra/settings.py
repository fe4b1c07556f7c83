"""Connection settings every Bishop service reads the same way (`BISHOP_*`, `.env`)."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class InfraSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BISHOP_", env_file=".env", extra="ignore")

    # Embedded mode keeps everything here; the server URLs below override its parts.
    data_dir: Path = Path("bishop-data")
    storage_url: str = ""
    bus_url: str = "memory://"
    state_url: str = "memory://"
    # How long an event waits out an outage of a server it needs before it is given up on
    # (dead-lettered, and what it belonged to failed with the reason).
    outage_retry_minutes: float = 10.0

    def delivery(self) -> dict[str, float]:
        """The bus's retry settings."""
        return {"outage_retry_seconds": self.outage_retry_minutes * 60}

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'objects').resolve()}"
