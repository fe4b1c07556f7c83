"""What every page module needs: the backend with the user's token, and the signed-in user."""

from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

from bishop_frontend.client import Backend


def backend(req: Request) -> Backend:
    return req.app.state.backend


async def api(req: Request, sess: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    return await backend(req).call(method, path, sess.get("token"), **kwargs)


def user(sess: dict[str, Any]) -> dict[str, Any] | None:
    return sess.get("user")


# What a player needs to show a file's length and to seek in it.
RELAYED_HEADERS = ("content-length", "content-range", "accept-ranges")


async def relay(
    req: Request, sess: dict[str, Any], path: str, playable: tuple[str, ...] = ()
) -> StreamingResponse:
    """A file from the backend, streamed through, whole or the part a `Range` asks for; a
    missing one fails before any byte is sent. It keeps its content type only if that is one
    of `playable` (a user's upload is never served as a page of this site)."""
    wanted = req.headers.get("range")
    upstream = await backend(req).open(
        path, sess.get("token", ""), headers={"Range": wanted} if wanted else None
    )
    kind = upstream.headers.get("content-type", "")
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        media_type=kind if kind.startswith(playable) else "application/octet-stream",
        headers={k: upstream.headers[k] for k in RELAYED_HEADERS if k in upstream.headers},
        background=BackgroundTask(upstream.aclose),
    )
