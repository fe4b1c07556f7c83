"""Objects from storage as streamed HTTP responses, whole or in part (`Range`), so that a
player can show an audio file's length and seek in it."""

import re
from urllib.parse import quote

from bishop_infra.storage import ObjectNotFound, Storage
from fastapi.responses import Response, StreamingResponse

from bishop_backend.errors import NotFound

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(ValueError):
    """The range lies outside the object (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, end inclusive) a single-range `Range` header asks for; None for the whole
    object (no header, several ranges or another unit, which RFC 9110 lets a server ignore)."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable
    return start, end


async def object_response(
    storage: Storage,
    key: str,
    media_type: str,
    filename: str | None = None,
    range_header: str | None = None,
) -> Response:
    try:
        size = await storage.size(key)
    except ObjectNotFound:
        raise NotFound("The file is missing from storage") from None
    headers = {"Accept-Ranges": "bytes"}
    if filename:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    try:
        wanted = byte_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(storage.read_stream(key), media_type=media_type, headers=headers)
    start, end = wanted
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        storage.read_stream(key, start, end - start + 1),
        status_code=206,
        media_type=media_type,
        headers=headers,
    )
