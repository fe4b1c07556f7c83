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

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'objects').resolve()}"
