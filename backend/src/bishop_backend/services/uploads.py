"""Multipart uploads read as a stream: the size limit is enforced while bytes arrive."""

from collections.abc import AsyncIterator

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from bishop_backend.errors import BadRequest, PayloadTooLarge, UnsupportedMedia


async def read_form(request: Request, *, max_bytes: int, max_files: int) -> FormData:
    """Parse a multipart body into spooled temporary files (memory first, then disk)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedMedia("send the files as multipart/form-data")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(_too_large(max_bytes))
    parser = MultiPartParser(
        request.headers, _limited(request.stream(), max_bytes), max_files=max_files, max_fields=20
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"malformed upload: {exc.message}") from None
    except ClientDisconnect:
        raise BadRequest("the upload was interrupted") from None


async def _limited(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLarge(_too_large(max_bytes))
        yield chunk


def _too_large(max_bytes: int) -> str:
    return f"upload larger than the limit of {max_bytes // (1024 * 1024)} MiB"
