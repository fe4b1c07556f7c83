"""The front door's limits, in moving windows (the `limits` library, on Redis with the server
stack and in memory when embedded): sign-in and sign-up attempts per client address, and a
lockout of an account after too many failed sign-ins, whoever asks. Past a limit the answer is
429 with `Retry-After` until the window moves on."""

import time
from urllib.parse import parse_qs, urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from bishop_backend.errors import TooManyRequests
from bishop_backend.settings import Settings


def _storage(state_url: str) -> Storage:
    parts = urlsplit(state_url)
    if parts.scheme not in ("redis", "rediss"):
        return MemoryStorage()
    prefix = parse_qs(parts.query).get("prefix", ["bishop:"])[0]
    url = parts._replace(scheme=f"async+{parts.scheme}", query="").geturl()
    return RedisStorage(url, implementation="redispy", key_prefix=f"{prefix}limits")


class Throttle:
    def __init__(self, settings: Settings) -> None:
        self.limiter = MovingWindowRateLimiter(_storage(settings.state_url))
        self.login_per_client: RateLimitItem = parse(settings.login_rate_limit)
        self.signup_per_client: RateLimitItem = parse(settings.signup_rate_limit)
        self.failures_per_account: RateLimitItem = parse(settings.login_failures_limit)

    async def login_attempt(self, client: str, email: str) -> None:
        """Refuse a sign-in from an address that tries too often, or for an account that
        failed too often lately."""
        if not await self.limiter.hit(self.login_per_client, "login", client):
            raise await self._refusal(
                self.login_per_client, ("login", client), "Too many sign-in attempts from here"
            )
        account = ("login-failures", _account(email))
        if not await self.limiter.test(self.failures_per_account, *account):
            raise await self._refusal(
                self.failures_per_account,
                account,
                "Too many failed sign-in attempts for this account",
            )

    async def login_failed(self, email: str) -> None:
        await self.limiter.hit(self.failures_per_account, "login-failures", _account(email))

    async def signup_attempt(self, client: str) -> None:
        if not await self.limiter.hit(self.signup_per_client, "signup", client):
            raise await self._refusal(
                self.signup_per_client, ("signup", client), "Too many sign-ups from here"
            )

    async def _refusal(
        self, limit: RateLimitItem, keys: tuple[str, str], message: str
    ) -> TooManyRequests:
        stats = await self.limiter.get_window_stats(limit, *keys)
        wait = max(1, int(stats.reset_time - time.time()) + 1)
        return TooManyRequests(f"{message}; try again in {wait} s", retry_after=wait)


def _account(email: str) -> str:
    return email.strip().lower()
