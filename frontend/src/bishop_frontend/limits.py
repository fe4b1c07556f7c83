"""Every request body is counted as it streams in, before anything parses it (FastHTML reads
each form whole, to spooled files, before a route runs): an upload may carry up to the upload
limit, any other form a few hundred KB. Past the limit the request fails with `BodyTooLarge`,
whether or not Content-Length announced the size."""

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_PATH = re.compile(r"/avatars/[^/]+/train/upload")
MAX_FORM_BYTES = 256 * 1024  # the largest form is a persona (a few KB) or a chat message
PORTRAIT_PATH = re.compile(r"/avatars/[^/]+/portrait")
MAX_PORTRAIT_BYTES = 2 * 2**20 + 64 * 1024  # the backend's 2 MB image limit, and the form around it


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit // 2**20 or 1} MiB")
        self.limit = limit


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = UPLOAD_PATH.fullmatch(scope["path"]) is not None
        limit = self.max_upload_bytes if upload else MAX_FORM_BYTES
        if PORTRAIT_PATH.fullmatch(scope["path"]):
            limit = MAX_PORTRAIT_BYTES
        declared = dict(scope["headers"]).get(b"content-length", b"")
        announced = int(declared) if declared.isdigit() else 0
        received = 0

        async def counted() -> Message:
            nonlocal received
            # Raised inside the app, so its exception handler answers (not a 500).
            if announced > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)
