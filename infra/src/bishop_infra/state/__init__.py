"""Shared state: `redis://host:port/db[?prefix=bishop:]` or `memory://name` (in-process)."""

from urllib.parse import parse_qsl, urlencode, urlsplit

from bishop_infra.state.base import LockTimeout, State
from bishop_infra.state.memory import MemoryState

_memory: dict[str, MemoryState] = {}
# Each open reply stream holds a pub/sub connection of its own, beside the commands' ones;
# redis-py's pool (100 connections by default since redis-py 8) refused the next one with
# "Too many connections" as soon as a hundred users waited for replies at once. A URL's own
# `max_connections` wins.
REDIS_MAX_CONNECTIONS = 2000


def state_from_url(url: str) -> State:
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return _memory.setdefault(parts.netloc or "default", MemoryState())
    if parts.scheme in ("redis", "rediss"):
        from redis.asyncio import Redis

        from bishop_infra.state.redis import RedisState

        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "bishop:")
        query.setdefault("max_connections", str(REDIS_MAX_CONNECTIONS))
        client = Redis.from_url(parts._replace(query=urlencode(query)).geturl())
        return RedisState(client, prefix=prefix)
    raise ValueError(f"unsupported state URL {url!r}: use redis://host:port/db or memory://")


__all__ = ["LockTimeout", "State", "state_from_url"]
