"""The backend's HTTP API, as the browser app uses it."""

from collections.abc import AsyncIterator
from typing import Any

import httpx

API = "/api/v1"


class ApiError(Exception):
    """The backend said no; `detail` is its message, fit to show."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class BackendDown(ApiError):
    def __init__(self) -> None:
        super().__init__(
            503, "The Bishop server is not reachable right now. Try again in a moment."
        )


class Backend:
    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + API, timeout=60, transport=transport
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        idempotency_key: str | None = None,
        client: str | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if client:
            # The backend limits sign-ins per browser, not per browser app.
            headers["X-Forwarded-For"] = client
        if idempotency_key and len(idempotency_key) <= 255 and idempotency_key.isascii():
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError:
            raise BackendDown() from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        return (
            response.json()
            if response.content
            and response.headers.get("content-type", "").startswith("application/json")
            else None
        )

    async def open(
        self, path: str, token: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """A GET whose body is still to be read (close it when done); a refusal raises first."""
        request = self.http.build_request(
            "GET", path, headers={"Authorization": f"Bearer {token}", **(headers or {})}
        )
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TransportError:
            raise BackendDown() from None
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise ApiError(response.status_code, _detail(response))
        return response

    async def stream(self, path: str, token: str) -> AsyncIterator[bytes]:
        """A binary or event stream, chunk by chunk."""
        response = await self.open(path, token)
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.reason_phrase)
    except ValueError:
        return response.reason_phrase or "error"
    if isinstance(detail, list):  # validation errors
        return "; ".join(_field_message(e) for e in detail)
    return str(detail)


def _field_message(error: dict[str, Any]) -> str:
    field = str(error.get("loc", ["", "value"])[-1])
    kind = str(error.get("type", ""))
    if field == "email":
        return "Invalid email address"
    if field == "password" and kind == "string_too_short":
        return "Password must be at least 8 characters"
    if field == "password" and kind == "string_too_long":
        return "Password must be at most 40 characters"
    return f"{field}: {error.get('msg', 'invalid')}"
