"""The backend's connections to the outside, built once from settings at startup."""

import asyncio
from dataclasses import dataclass, field

from bishop_infra.bus import Bus, bus_from_url
from bishop_infra.state import State, state_from_url
from bishop_infra.storage import Storage, storage_from_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.db import create_engine, session_factory
from bishop_backend.services.throttle import Throttle
from bishop_backend.settings import Settings


@dataclass
class Infra:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    storage: Storage
    bus: Bus
    state: State
    secret_key: str
    throttle: Throttle
    # Set when the server begins to shut down: open reply streams end so the process can exit.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Infra":
        engine = create_engine(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            storage=storage_from_url(settings.resolved_storage_url),
            bus=bus_from_url(settings.bus_url, client_id="bishop-backend", **settings.delivery()),
            state=state_from_url(settings.state_url),
            secret_key=settings.resolved_secret_key,
            throttle=Throttle(settings),
        )

    async def close(self) -> None:
        await self.bus.stop()
        await self.state.close()
        await self.engine.dispose()
