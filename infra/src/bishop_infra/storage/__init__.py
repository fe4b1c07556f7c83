"""Object storage: `s3://KEY:SECRET@host:port/bucket[?secure=true]` (MinIO or any S3) or
`file:///absolute/folder` (embedded)."""

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from bishop_infra.storage.base import ObjectNotFound, Storage


def storage_from_url(url: str) -> Storage:
    parts = urlsplit(url)
    if parts.scheme == "file":
        from bishop_infra.storage.local import LocalStorage

        return LocalStorage(Path(unquote(parts.netloc + parts.path)))
    if parts.scheme == "s3":
        from minio import Minio

        from bishop_infra.storage.s3 import S3Storage

        bucket = parts.path.strip("/")
        if not bucket or not parts.hostname:
            raise ValueError("an s3:// storage URL needs a host and a bucket")
        secure = parse_qs(parts.query).get("secure", ["false"])[0].lower() == "true"
        region = parse_qs(parts.query).get("region", ["us-east-1"])[0]
        endpoint = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
        client = Minio(
            endpoint,
            access_key=unquote(parts.username or ""),
            secret_key=unquote(parts.password or ""),
            secure=secure,
            region=region,
        )
        return S3Storage(client, bucket)
    raise ValueError(f"unsupported storage URL {url!r}: use s3://... or file:///folder")


__all__ = ["ObjectNotFound", "Storage", "storage_from_url"]
