"""What every page module needs: the backend with the user's token, and the signed-in user."""

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from bishop_frontend.client import Backend


def backend(req: Request) -> Backend:
    return req.app.state.backend


async def api(req: Request, sess: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    return await backend(req).call(method, path, sess.get("token"), **kwargs)


def user(sess: dict[str, Any]) -> dict[str, Any] | None:
    return sess.get("user")


async def relay(
    req: Request, sess: dict[str, Any], path: str, media_type: str
) -> StreamingResponse:
    """A file from the backend, streamed through; a missing one fails before any byte is sent."""
    stream = backend(req).stream(path, sess.get("token", ""))
    first = await anext(stream)

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in stream:
            yield chunk

    return StreamingResponse(body(), media_type=media_type)
