"""What keeps another site from acting with a signed-in user's cookie, and what keeps pages out
of frames and caches.

CSRF: every state-changing request must come from one of Bishop's own pages. Two checks, as
OWASP recommends: the browser's `Origin` (or `Referer`) must name this site, and the request
must carry the session's token, which only Bishop's pages know (a `<meta>` in each page; static
`bishop.js` adds it to every htmx request). A cookie alone no longer does anything.
"""

import secrets
from contextvars import ContextVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The page being rendered embeds this request's token; set by `check_csrf`.
_page_token: ContextVar[str] = ContextVar("csrf_token", default="")

# htmx evaluates hx-on attributes and FastHTML's toasts are inline scripts: both need
# 'unsafe-inline'/'unsafe-eval' until those move into static files. Everything is same-origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def page_token() -> str:
    """The CSRF token for the page being rendered."""
    return _page_token.get()


def _session_token(sess: dict) -> str:
    token = sess.get("csrf")
    if not isinstance(token, str) or not token:
        token = sess["csrf"] = secrets.token_urlsafe(32)
    return token


def _same_origin(req: Request) -> bool:
    source = req.headers.get("origin") or req.headers.get("referer")
    if source is None:
        # Not a browser, or one that strips both headers: the token alone decides.
        return True
    ours = {req.headers.get("host"), req.headers.get("x-forwarded-host")} - {None}
    return source != "null" and urlsplit(source).netloc in ours


async def check_csrf(req: Request, sess) -> Response | None:  # type: ignore[no-untyped-def]
    """Beforeware: refuse a state-changing request that did not come from Bishop's own page.
    Async, so that it runs in the request's own context and the page sees `page_token`; `sess`
    unannotated, because FastHTML fills it by name and an annotated dict would be a copy."""
    token = _session_token(sess)
    _page_token.set(token)
    if req.method in SAFE_METHODS:
        return None
    sent = req.headers.get(TOKEN_HEADER, "")
    if _same_origin(req) and secrets.compare_digest(sent.encode(), token.encode()):
        return None
    # An htmx request from an old page (its session ended meanwhile) reloads it, token and all;
    # a cross-site request cannot send htmx's header without CORS, which Bishop never allows.
    reload = {"HX-Refresh": "true"} if req.headers.get("hx-request") else None
    return HTMLResponse(
        "<p role='alert'>This request did not come from a Bishop page. "
        "Reload the page and try again.</p>",
        status_code=403,
        headers=reload,
    )


class SecurityHeaders:
    """Headers on every answer: no framing, no MIME sniffing, no referrer to other sites, and
    private pages never stored by the browser (Back after sign-out shows nothing)."""

    def __init__(self, app: ASGIApp, *, cacheable_prefix: str = "/static/") -> None:
        self.app = app
        self.cacheable_prefix = cacheable_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith(self.cacheable_prefix)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = {
                    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"x-frame-options": b"DENY",
                    b"referrer-policy": b"same-origin",
                }
                if not cacheable:
                    extra[b"cache-control"] = b"no-store"
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
