"""Shared state on Redis."""

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from bishop_infra.state.base import LockTimeout, State


class RedisState(State):
    def __init__(self, client: Redis, prefix: str = "bishop:") -> None:
        self.client = client
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def claim(self, key: str, ttl: float) -> bool:
        return bool(await self.client.set(self._k(key), "1", nx=True, px=int(ttl * 1000)))

    @asynccontextmanager
    async def lock(self, name: str, *, ttl: float = 30, wait: float = 10) -> AsyncIterator[None]:
        lock = self.client.lock(self._k("lock:" + name), timeout=ttl, blocking_timeout=wait)
        if not await lock.acquire():
            raise LockTimeout(name)
        try:
            yield
        finally:
            # LockError: it expired while held; the ttl is the safety net, nothing to undo.
            with contextlib.suppress(LockError):
                await lock.release()

    async def set_value(self, key: str, value: str, ttl: float) -> None:
        await self.client.set(self._k(key), value, px=int(ttl * 1000))

    async def get_value(self, key: str) -> str | None:
        value = await self.client.get(self._k(key))
        return value.decode() if value is not None else None

    async def put_field(self, key: str, field: str, value: str, ttl: float) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self._k(key), field, value)
            pipe.pexpire(self._k(key), int(ttl * 1000))
            await pipe.execute()

    async def get_fields(self, key: str) -> dict[str, str]:
        raw = await self.client.hgetall(self._k(key))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def delete_field(self, key: str, field: str) -> None:
        await self.client.hdel(self._k(key), field)

    async def delete(self, key: str) -> None:
        await self.client.delete(self._k(key))

    async def publish(self, channel: str, message: str) -> None:
        await self.client.publish(self._k(channel), message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)

        async def messages() -> AsyncIterator[str]:
            async for item in pubsub.listen():
                if item["type"] == "message":
                    yield item["data"].decode()

        try:
            await pubsub.subscribe(self._k(channel))
            yield messages()
        finally:
            # Closing gives the connection back whatever became of it (an unsubscribe on a
            # broken one would raise and keep it out of the pool).
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe()
            await pubsub.aclose()

    async def close(self) -> None:
        await self.client.aclose()
