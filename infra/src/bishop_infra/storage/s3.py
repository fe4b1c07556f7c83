"""Object storage on S3 / MinIO through the `minio` client (blocking, so run in threads)."""

import asyncio
from collections.abc import AsyncIterator
from typing import BinaryIO

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error

from bishop_infra.storage.base import CHUNK_SIZE, ObjectNotFound, Storage, check_key

_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}


def _is_missing(exc: MinioException) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in _MISSING
    # Some S3 servers (rclone's among them) answer a HEAD or GET of a missing key with a 404
    # whose body the client cannot parse.
    return isinstance(exc, InvalidResponseError) and exc.__reduce__()[1][0] == 404


class S3Storage(Storage):
    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def ensure_ready(self) -> None:
        if not await asyncio.to_thread(self.client.bucket_exists, self.bucket):
            await asyncio.to_thread(self.client.make_bucket, self.bucket)

    async def put_stream(self, key: str, body: BinaryIO, size: int, content_type: str) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            self.bucket,
            check_key(key),
            body,
            size,
            content_type=content_type,
        )

    async def read_stream(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        if length == 0:
            return
        try:
            response = await asyncio.to_thread(
                self.client.get_object, self.bucket, check_key(key), start, length or 0
            )
        except MinioException as exc:
            if _is_missing(exc):
                raise ObjectNotFound(key) from None
            raise
        try:
            while chunk := await asyncio.to_thread(response.read, CHUNK_SIZE):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def size(self, key: str) -> int:
        try:
            stat = await asyncio.to_thread(self.client.stat_object, self.bucket, check_key(key))
        except MinioException as exc:
            if _is_missing(exc):
                raise ObjectNotFound(key) from None
            raise
        return stat.size or 0

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, check_key(key))

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_prefix, prefix)

    def _delete_prefix(self, prefix: str) -> int:
        names = [
            o.object_name
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            if o.object_name
        ]
        errors = list(self.client.remove_objects(self.bucket, [DeleteObject(n) for n in names]))
        if errors:
            raise RuntimeError(
                f"could not delete {len(errors)} objects under {prefix}: {errors[0]}"
            )
        return len(names)
