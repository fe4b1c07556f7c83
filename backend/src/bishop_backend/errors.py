"""Domain errors raised by services; one handler in `main` turns them into JSON responses."""

from typing import Any


class DomainError(Exception):
    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}


class BadRequest(DomainError):
    status_code = 400


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class PayloadTooLarge(DomainError):
    status_code = 413


class UnsupportedMedia(DomainError):
    status_code = 415


class Unprocessable(DomainError):
    """A field of the request is invalid. The body has the shape of a validation error's, so a
    client reads every 422 alike: `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`."""

    status_code = 422

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail)
        self.loc = ["body", field]

    def body(self) -> dict[str, Any]:
        return {"detail": [{"loc": self.loc, "msg": self.detail, "type": "value_error"}]}


class Unavailable(DomainError):
    status_code = 503


class TooManyRequests(DomainError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}
