"""In-process state for embedded mode (one process, so plain dicts and asyncio primitives)."""

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bishop_infra.state.base import LockTimeout, State


class MemoryState(State):
    def __init__(self) -> None:
        self._values: dict[str, tuple[float, str | dict[str, str]]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._channels: defaultdict[str, set[asyncio.Queue[str]]] = defaultdict(set)

    def _live(self, key: str) -> str | dict[str, str] | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._values[key]
            return None
        return value

    async def claim(self, key: str, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        self._values[key] = (time.monotonic() + ttl, "1")
        return True

    @asynccontextmanager
    async def lock(self, name: str, *, ttl: float = 30, wait: float = 10) -> AsyncIterator[None]:
        lock = self._locks[name]
        try:
            await asyncio.wait_for(lock.acquire(), wait)
        except TimeoutError:
            raise LockTimeout(name) from None
        try:
            yield
        finally:
            lock.release()

    async def set_value(self, key: str, value: str, ttl: float) -> None:
        self._values[key] = (time.monotonic() + ttl, value)

    async def get_value(self, key: str) -> str | None:
        value = self._live(key)
        return value if isinstance(value, str) else None

    async def put_field(self, key: str, field: str, value: str, ttl: float) -> None:
        fields = self._live(key)
        fields = dict(fields) if isinstance(fields, dict) else {}
        fields[field] = value
        self._values[key] = (time.monotonic() + ttl, fields)

    async def get_fields(self, key: str) -> dict[str, str]:
        value = self._live(key)
        return dict(value) if isinstance(value, dict) else {}

    async def delete_field(self, key: str, field: str) -> None:
        fields = self._live(key)
        if isinstance(fields, dict):
            fields.pop(field, None)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def publish(self, channel: str, message: str) -> None:
        for queue in self._channels.get(channel, ()):
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._channels[channel].add(queue)

        async def messages() -> AsyncIterator[str]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            self._channels[channel].discard(queue)
            if not self._channels[channel]:
                del self._channels[channel]
