"""Bounds on what a request may carry: pagination parameters, and the size of bodies other
than uploads (which `services.uploads` limits while they stream in)."""

import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_SKIP = 1_000_000
MAX_PAGE = 500


@dataclass(frozen=True)
class Page:
    skip: int
    limit: int


async def get_page(
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Page:
    # A coroutine: FastAPI would call a class (or a plain function) in a worker thread.
    return Page(skip, limit)


PageDep = Annotated[Page, Depends(get_page)]


class BodyLimit:
    """413 for a non-multipart body over `max_bytes`, counted as it arrives: a chunked body
    without Content-Length is cut off too, before it is read whole into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_multipart(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        # Read the body first (at most `max_bytes` of it), then hand it on: an error raised
        # mid-parse would reach the client as a 400, not as what it is.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # afterwards: the disconnect a streaming response awaits

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"The request body is larger than {self.max_bytes // 1024} KiB"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def _is_multipart(scope: Scope) -> bool:
    return (_header(scope, b"content-type") or b"").lower().startswith(b"multipart/form-data")


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
