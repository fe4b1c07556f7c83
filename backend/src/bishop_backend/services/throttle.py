"""Login lockout: failed logins are counted per account in a moving window (the `limits`
library, on Redis with the server stack and in memory when embedded); past the limit the
account answers 429 with `Retry-After` until the window moves on, whoever asks."""

import time
from urllib.parse import parse_qs, urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from bishop_backend.errors import TooManyRequests


def _storage(state_url: str) -> Storage:
    parts = urlsplit(state_url)
    if parts.scheme not in ("redis", "rediss"):
        return MemoryStorage()
    prefix = parse_qs(parts.query).get("prefix", ["bishop:"])[0]
    url = parts._replace(scheme=f"async+{parts.scheme}", query="").geturl()
    return RedisStorage(url, implementation="redispy", key_prefix=f"{prefix}limits")


class LoginThrottle:
    def __init__(self, state_url: str, failures: str) -> None:
        self.limit: RateLimitItem = parse(failures)
        self.limiter = MovingWindowRateLimiter(_storage(state_url))

    async def check(self, email: str) -> None:
        """Refuse a login for an account that failed too often lately."""
        key = email.strip().lower()
        if not await self.limiter.test(self.limit, "login-failures", key):
            stats = await self.limiter.get_window_stats(self.limit, "login-failures", key)
            wait = max(1, int(stats.reset_time - time.time()) + 1)
            raise TooManyRequests(
                "Too many failed sign-in attempts for this account; try again later",
                retry_after=wait,
            )

    async def failed(self, email: str) -> None:
        await self.limiter.hit(self.limit, "login-failures", email.strip().lower())
