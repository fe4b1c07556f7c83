"""Short-lived shared state: claims, locks, small values and fields, and pub/sub channels."""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager


class LockTimeout(TimeoutError):
    """The lock stayed taken for longer than we were willing to wait."""


class State(ABC):
    @abstractmethod
    async def claim(self, key: str, ttl: float) -> bool:
        """Take `key` if nobody holds it; True for the first caller only (until it expires)."""

    @abstractmethod
    def lock(
        self, name: str, *, ttl: float = 30, wait: float = 10
    ) -> AbstractAsyncContextManager[None]:
        """Mutual exclusion across every process sharing this state."""

    @abstractmethod
    async def set_value(self, key: str, value: str, ttl: float) -> None: ...

    @abstractmethod
    async def get_value(self, key: str) -> str | None: ...

    @abstractmethod
    async def put_field(self, key: str, field: str, value: str, ttl: float) -> None:
        """Set one field of a hash; rewriting a field with the same value changes nothing."""

    @abstractmethod
    async def get_fields(self, key: str) -> dict[str, str]: ...

    @abstractmethod
    async def delete_field(self, key: str, field: str) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, message: str) -> None: ...

    @abstractmethod
    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        """Messages published on `channel` after the subscription is made."""

    async def close(self) -> None:
        return None
