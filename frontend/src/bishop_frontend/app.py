"""The browser app: FastHTML pages that talk to the backend's HTTP API only."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fasthtml import common as fh
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from bishop_frontend.client import ApiError, Backend
from bishop_frontend.components import Layout
from bishop_frontend.limits import BodyLimit, BodyTooLarge
from bishop_frontend.pages import auth, avatars, chats, materials, replies, training
from bishop_frontend.security import SecurityHeaders, check_csrf
from bishop_frontend.settings import FrontendSettings, get_settings

STATIC = Path(__file__).parent / "static"
PUBLIC = [r"/static/.*", "/", "/login", "/signup", r"/favicon\.ico"]


def create_app(settings: FrontendSettings | None = None) -> fh.FastHTML:
    settings = settings or get_settings()

    async def lifespan(app: fh.FastHTML) -> AsyncIterator[None]:  # FastHTML wants the generator
        app.state.backend = Backend(settings.api_url)
        app.state.settings = settings
        try:
            yield
        finally:
            await app.state.backend.close()

    app = fh.FastHTML(
        hdrs=(
            fh.Meta(name="viewport", content="width=device-width, initial-scale=1"),
            fh.Link(rel="icon", href="/static/favicon.svg", type="image/svg+xml"),
            # Served from the package, never a CDN: deployments may be offline.
            *[
                fh.Link(rel="stylesheet", href=f"/static/{name}.css")
                for name in ("bishop", "chat", "replies", "avatar", "materials")
            ],
            *[
                fh.Script(src=f"/static/{name}.js")
                for name in ("htmx.min", "htmx-sse", "bishop", "chat", "replies", "materials")
            ],
        ),
        default_hdrs=False,
        before=[
            fh.Beforeware(check_csrf, skip=[r"/static/.*"]),
            fh.Beforeware(_require_login, skip=PUBLIC),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, max_upload_bytes=settings.max_upload_bytes),
        ],
        max_part_size=settings.max_upload_bytes,
        secret_key=settings.resolved_session_secret,
        max_age=settings.access_token_expire_minutes * 60,
        sess_https_only=settings.resolved_secure_cookies,
        same_site="lax",
        exception_handlers={ApiError: _api_error, BodyTooLarge: _too_large, 404: _not_found},
        lifespan=lifespan,
        htmlkw={"lang": "en"},
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    fh.setup_toasts(app)
    app.route("/favicon.ico", methods=["get"])(_favicon)
    for module in (auth, avatars, chats, replies, training, materials):
        module.ar.to_app(app)
    return app


async def _favicon() -> FileResponse:
    """Browsers ask for /favicon.ico on their own, whatever the page links."""
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon")


def _require_login(req: Request, sess) -> Response | None:
    if sess.get("token"):
        return None
    if req.headers.get("HX-Request"):
        return Response(headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


def _page(req: Request, status: int, title: str, *content: Any) -> Response:
    sess = req.scope.get("session", {})
    body = fh.to_xml(
        fh.Html(
            fh.Head(*req.app.hdrs, fh.Title(f"{title} · Bishop")),
            fh.Body(*Layout(title, *content, user=sess.get("user"))[1:]),
        )
    )
    if req.headers.get("HX-Request"):
        # htmx swaps only successful answers; send the message into the page instead.
        return HTMLResponse(
            body, headers={"HX-Retarget": "#main", "HX-Reswap": "outerHTML", "HX-Reselect": "#main"}
        )
    return HTMLResponse(body, status_code=status)


async def _api_error(req: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status == 401:
        req.scope.get("session", {}).clear()
        return RedirectResponse("/login", status_code=303)
    if exc.status == 404:
        return await _not_found(req, exc)
    return _page(
        req,
        exc.status,
        "Something went wrong",
        fh.Div(fh.P(exc.detail), cls="notice", role="alert"),
        fh.P(fh.A("Back to your avatars", href="/avatars")),
    )


async def _too_large(req: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyTooLarge)
    message = f"File upload failed! The files are {exc}."
    if req.headers.get("HX-Request"):
        # The page stays as it is; only the message appears (htmx swaps 2xx answers only).
        toast = fh.Div(fh.Toast(message, "error"), id="fh-toast-container", hx_swap_oob="beforeend")
        return HTMLResponse(fh.to_xml(toast), headers={"HX-Reswap": "none"})
    return _page(req, 413, "Too large", fh.Div(fh.P(message), cls="notice", role="alert"))


async def _not_found(req: Request, exc: Exception) -> Response:
    return _page(
        req,
        404,
        "Not found",
        fh.H1("Not found"),
        fh.P("There is nothing here, or it is not yours."),
        fh.P(fh.A("Back to your avatars", href="/avatars")),
    )


async def run(settings: FrontendSettings | None = None) -> None:
    """Serve the app (embedded mode starts this next to the backend)."""
    settings = settings or get_settings()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.frontend_host,
        port=settings.frontend_port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the host process owns signals
    await server.serve()


def main() -> None:
    asyncio.run(run())
