"""The browser app: FastHTML pages that talk to the backend's HTTP API only."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fasthtml import common as fh
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from bishop_frontend.client import ApiError, Backend
from bishop_frontend.components import Layout
from bishop_frontend.pages import auth, avatars, chats, training
from bishop_frontend.settings import FrontendSettings, get_settings

STATIC = Path(__file__).parent / "static"
PUBLIC = [r"/static/.*", "/", "/login", "/signup", "/logout", r"/favicon\.ico"]


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
            # Served from the package, never a CDN: deployments may be offline.
            fh.Link(rel="stylesheet", href="/static/bishop.css"),
            fh.Script(src="/static/htmx.min.js"),
            fh.Script(src="/static/htmx-sse.js"),
        ),
        default_hdrs=False,
        before=fh.Beforeware(_require_login, skip=PUBLIC),
        secret_key=settings.resolved_session_secret,
        exception_handlers={ApiError: _api_error, 404: _not_found},
        lifespan=lifespan,
        htmlkw={"lang": "en"},
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    fh.setup_toasts(app)
    for module in (auth, avatars, chats, training):
        module.ar.to_app(app)
    return app


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
