"""uvicorn as Bishop runs it: on SIGTERM open reply streams are ended first (their clients
reconnect and resume), so the process exits within seconds, not when the last stream would."""

import uvicorn
from fastapi import FastAPI

from bishop_backend.settings import Settings

# What is still running this long after SIGTERM is cancelled.
GRACEFUL_SHUTDOWN_SECONDS = 5


class Server(uvicorn.Server):
    def __init__(self, app: FastAPI, *, settings: Settings, **config: object) -> None:
        super().__init__(
            uvicorn.Config(
                app,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                proxy_headers=True,
                forwarded_allow_ips=settings.forwarded_allow_ips,
                **config,  # type: ignore[arg-type]
            )
        )
        self.app = app

    async def shutdown(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        infra = getattr(self.app.state, "infra", None)
        if infra is not None:
            infra.closing.set()
        await super().shutdown(sockets)
