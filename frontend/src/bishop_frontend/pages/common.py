"""What every page module needs: the backend with the user's token, and the signed-in user."""

from typing import Any

from starlette.requests import Request

from bishop_frontend.client import Backend


def backend(req: Request) -> Backend:
    return req.app.state.backend


async def api(req: Request, sess: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    return await backend(req).call(method, path, sess.get("token"), **kwargs)


def user(sess: dict[str, Any]) -> dict[str, Any] | None:
    return sess.get("user")
