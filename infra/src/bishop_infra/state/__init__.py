"""Shared state: `redis://host:port/db` or `memory://` (in-process, one per name)."""

from urllib.parse import urlsplit

from bishop_infra.state.base import LockTimeout, State
from bishop_infra.state.memory import MemoryState

_memory: dict[str, MemoryState] = {}


def state_from_url(url: str, *, prefix: str = "bishop:") -> State:
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return _memory.setdefault(parts.netloc or "default", MemoryState())
    if parts.scheme in ("redis", "rediss"):
        from redis.asyncio import Redis

        from bishop_infra.state.redis import RedisState

        return RedisState(Redis.from_url(url), prefix=prefix)
    raise ValueError(f"unsupported state URL {url!r}: use redis://host:port/db or memory://")


__all__ = ["LockTimeout", "State", "state_from_url"]
