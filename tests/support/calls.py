"""Counting and failing calls of a worker's parts, to see what a test's events made it do."""

import inspect
from typing import Any

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError


def counted(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[tuple[Any, ...]]:
    """Replace `owner.name` with a wrapper that records each call's arguments."""
    calls: list[tuple[Any, ...]] = []
    original = getattr(owner, name)
    if inspect.iscoroutinefunction(original):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            return await original(*args, **kwargs)
    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            calls.append(args)
            return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def storage_down() -> MaxRetryError:
    """What the S3 client raises while the server cannot be reached."""
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")  # type: ignore[arg-type]
    return MaxRetryError(None, "/bishop/key", reason=refused)  # type: ignore[arg-type]


def failing_first(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, times: int) -> list[int]:
    """`owner.name` (a coroutine) raises `storage_down()` the first `times` calls, then works;
    returns a one-item list counting the failures so far."""
    original = getattr(owner, name)
    failures = [0]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures[0] < times:
            failures[0] += 1
            raise storage_down()
        return await original(*args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)
    return failures
