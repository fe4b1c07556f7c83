"""Backend settings, read once from the environment (`BISHOP_*`) and `.env`."""

import secrets
from functools import lru_cache
from typing import Literal

from bishop_infra.settings import InfraSettings

PLACEHOLDER_SECRET = "change-me"


class Settings(InfraSettings):
    environment: Literal["local", "production"] = "local"
    database_url: str = ""
    # Connections one backend process keeps open and may add under load; with several backends
    # their sum must stay under Postgres's max_connections (100 by default).
    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_pool_timeout_seconds: float = 10.0
    consumer_group: str = "backend"
    secret_key: str = ""
    access_token_expire_minutes: int = 60 * 24 * 8
    # Moving windows of the front door (429 past them): failed sign-ins per account, sign-in
    # and sign-up attempts per client address.
    login_failures_limit: str = "10/minute"
    login_rate_limit: str = "60/minute"
    signup_rate_limit: str = "20/hour"
    # Proxies whose X-Forwarded-For names the client (the browser app; comma-separated
    # addresses or networks): the per-address limits count browsers, not the browser app.
    forwarded_allow_ips: str = "127.0.0.1"
    migrate_on_start: bool = True

    max_upload_bytes: int = 200 * 1024 * 1024
    max_files_per_upload: int = 20
    # Any body but an upload: the largest one a route takes is a persona (a few KB).
    max_json_bytes: int = 256 * 1024
    chat_history_turns: int = 20
    # How long a reply stream waits for the text and then the dub before it gives up.
    reply_stream_timeout: float = 900.0
    reply_stream_heartbeat: float = 15.0

    # The sweeper fails what stays unfinished longer than these (seconds since its last change).
    reply_deadline_seconds: float = 600.0
    dub_deadline_seconds: float = 900.0
    material_deadline_seconds: float = 3 * 3600.0
    run_deadline_seconds: float = 1800.0
    sweep_interval_seconds: float = 30.0
    # A worker whose last health answer is older than this is reported down.
    worker_heartbeat_seconds: float = 10.0
    worker_down_after_seconds: float = 35.0

    first_superuser_email: str | None = None
    first_superuser_password: str | None = None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'bishop.db').resolve()}"

    @property
    def resolved_secret_key(self) -> str:
        """The configured key; in local mode without one, a random key kept in the data folder
        so that logins survive restarts."""
        if self.secret_key:
            if self.environment == "production" and (
                self.secret_key == PLACEHOLDER_SECRET or len(self.secret_key) < 32
            ):
                raise ValueError("BISHOP_SECRET_KEY is a placeholder or shorter than 32 characters")
            return self.secret_key
        if self.environment == "production":
            raise ValueError("BISHOP_SECRET_KEY must be set in production")
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
