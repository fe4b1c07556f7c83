"""Objects from storage as streamed HTTP responses."""

from urllib.parse import quote

from bishop_infra.storage import ObjectNotFound, Storage
from fastapi.responses import StreamingResponse

from bishop_backend.errors import NotFound


async def object_response(
    storage: Storage, key: str, media_type: str, filename: str | None = None
) -> StreamingResponse:
    try:
        size = await storage.size(key)
    except ObjectNotFound:
        raise NotFound("The file is missing from storage") from None
    headers = {"Content-Length": str(size)}
    if filename:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    return StreamingResponse(storage.read_stream(key), media_type=media_type, headers=headers)
