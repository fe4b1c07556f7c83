"""Headers on every API answer: nothing is framed, sniffed, leaked as a referrer or kept in a
cache (answers are private to their user). The API serves JSON, audio and event streams, so
its policy allows nothing to run; only the interactive docs run Swagger UI (served from the
fastapi-offline package)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCS_POLICY = "; ".join(
    (
        "default-src 'self'",
        # FastAPI's docs page starts Swagger UI with an inline script.
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
    )
)
DOCS_PATHS = ("/docs",)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = API_POLICY if not scope["path"].startswith(DOCS_PATHS) else DOCS_POLICY
        extra = {
            b"content-security-policy": policy.encode(),
            b"x-content-type-options": b"nosniff",
            b"x-frame-options": b"DENY",
            b"referrer-policy": b"no-referrer",
            b"cache-control": b"no-store",
        }

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
