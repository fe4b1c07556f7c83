"""Object storage in a local folder, for embedded mode."""

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from bishop_infra.storage.base import CHUNK_SIZE, ObjectNotFound, Storage, check_key


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def ensure_ready(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def put_stream(self, key: str, body: BinaryIO, size: int, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), body)

    @staticmethod
    def _write(path: Path, body: BinaryIO) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write aside and rename, so a reader never sees half an object.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(body, out, CHUNK_SIZE)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    async def read_stream(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None
        try:
            handle.seek(start)
            left = length
            while left is None or left > 0:
                want = CHUNK_SIZE if left is None else min(CHUNK_SIZE, left)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path.stat().st_size

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_prefix, prefix)

    def _delete_prefix(self, prefix: str) -> int:
        target = self._path(prefix.rstrip("/"))
        if target.is_file():
            target.unlink()
            return 1
        if target.is_dir():
            count = sum(1 for p in target.rglob("*") if p.is_file())
            shutil.rmtree(target)
            return count
        return 0
