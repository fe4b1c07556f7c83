"""Browser-app settings (`BISHOP_*`, `.env`)."""

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class FrontendSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BISHOP_", env_file=".env", extra="ignore")

    environment: Literal["local", "production"] = "local"
    data_dir: Path = Path("bishop-data")
    api_url: str = "http://127.0.0.1:8000"  # the backend, as this server reaches it
    frontend_host: str = "127.0.0.1"
    frontend_port: int = 8080
    session_secret: str = ""  # signs the session cookie; empty: a random one kept in data_dir
    max_upload_bytes: int = 200 * 1024 * 1024
    # The session cookie lives as long as the backend's token inside it (same variable).
    access_token_expire_minutes: int = 60 * 24 * 8
    # Secure cookies travel over HTTPS only (and to localhost); unset: on in production.
    secure_cookies: bool | None = None

    @property
    def resolved_secure_cookies(self) -> bool:
        if self.secure_cookies is None:
            return self.environment == "production"
        return self.secure_cookies

    @property
    def resolved_session_secret(self) -> str:
        if self.session_secret:
            if self.session_secret == "change-me" or len(self.session_secret) < 32:
                raise ValueError(
                    "BISHOP_SESSION_SECRET is a placeholder or shorter than 32 characters"
                )
            return self.session_secret
        path = self.data_dir / "frontend_session_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> FrontendSettings:
    return FrontendSettings()
