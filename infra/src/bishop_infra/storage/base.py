"""The object storage interface."""

import io
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import BinaryIO

CHUNK_SIZE = 256 * 1024


class ObjectNotFound(LookupError):
    """No object under this key."""


class Storage(ABC):
    """Objects under `/`-separated keys; bodies travel as streams, never whole in memory."""

    @abstractmethod
    async def ensure_ready(self) -> None:
        """Create the bucket or folder if missing."""

    @abstractmethod
    async def put_stream(self, key: str, body: BinaryIO, size: int, content_type: str) -> None:
        """Store `size` bytes read from the file object `body`."""

    @abstractmethod
    def read_stream(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the object's bytes in chunks, from `start`, `length` of them (None: to the end);
        raises ObjectNotFound before the first chunk."""

    @abstractmethod
    async def size(self, key: str) -> int:
        """Size in bytes; raises ObjectNotFound."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix`; returns how many."""

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        await self.put_stream(key, io.BytesIO(data), len(data), content_type)

    async def get_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.read_stream(key)])

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except ObjectNotFound:
            return False
        return True

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Delete one object; a missing one is not an error."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key
