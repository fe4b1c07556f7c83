"""The FastAPI app: routes, error mapping, and the infrastructure it starts and stops."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy import delete
from sqlmodel import col
from starlette.types import ASGIApp, Receive, Scope, Send

from bishop_backend.api import avatars, chats, responses, search, training, users, utils
from bishop_backend.api.deps import API_PREFIX
from bishop_backend.errors import DomainError
from bishop_backend.headers import SecurityHeaders
from bishop_backend.infra import Infra
from bishop_backend.limits import BodyLimit
from bishop_backend.migrations import upgrade
from bishop_backend.models import ProcessedEvent
from bishop_backend.models.common import utcnow
from bishop_backend.services import idempotency
from bishop_backend.services.health import OUTAGE_ERRORS, outage_response, ping_workers
from bishop_backend.services.orchestrator import Orchestrator
from bishop_backend.services.outbox import OutboxRelay, discard_unsent
from bishop_backend.services.sweeper import sweep, sweep_forever
from bishop_backend.services.users import ensure_superuser
from bishop_backend.settings import Settings, get_settings

log = logging.getLogger("bishop.backend")
# Event ids are kept long enough to outlast any redelivery, then pruned at startup.
PROCESSED_EVENT_RETENTION_DAYS = 14


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not (settings.database_url and settings.storage_url):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        infra = Infra.from_settings(settings)
        if settings.migrate_on_start:
            await upgrade(infra.engine)
        await infra.storage.ensure_ready()
        await _prepare(infra)
        Orchestrator(infra).subscribe()
        await infra.bus.start()
        app.state.infra = infra
        relay = OutboxRelay(infra)
        background = [
            asyncio.create_task(relay.run(), name="outbox relay"),
            asyncio.create_task(sweep_forever(infra), name="sweeper"),
            asyncio.create_task(ping_workers(infra), name="worker pings"),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            # What the relay has not sent stays in the outbox for the next start.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await relay.relay_once()
            await infra.close()

    # The docs page loads Swagger UI from the package, not a CDN: a self-hosted Bishop may have
    # no internet. (No ReDoc: its page still fetches a logo from Redocly's CDN.)
    app = FastAPIOffline(
        redoc_url=None,
        title="Bishop",
        summary="Trainable digital avatars: the orchestrator API",
        version="0.1.0",
        lifespan=lifespan,
        redirect_slashes=False,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    routers = [module.router for module in (users, avatars, chats, search, training, utils)]
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    responses.document(app, routers, API_PREFIX)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in OUTAGE_ERRORS:
        app.add_exception_handler(error, outage_response)
    app.add_middleware(BodyLimit, max_bytes=settings.max_json_bytes)
    app.add_middleware(IgnoreTrailingSlash)
    app.add_middleware(SecurityHeaders)
    return app


async def _prepare(infra: Infra) -> None:
    s = infra.settings
    async with infra.sessions() as session:
        cutoff = utcnow() - timedelta(days=PROCESSED_EVENT_RETENTION_DAYS)
        await session.exec(delete(ProcessedEvent).where(col(ProcessedEvent.processed_at) < cutoff))
        await idempotency.prune(session)
        if s.bus_url.startswith("memory"):
            # The in-process bus died with the last process: nothing in flight can arrive.
            await discard_unsent(session)
        await session.commit()
        if s.first_superuser_email and s.first_superuser_password:
            await ensure_superuser(session, s.first_superuser_email, s.first_superuser_password)
    if s.bus_url.startswith("memory"):
        await sweep(infra, restarted=True)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


class IgnoreTrailingSlash:
    """`/avatars` and `/avatars/` are the same route: the thesis and clients use both."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/")}
        await self.app(scope, receive, send)
