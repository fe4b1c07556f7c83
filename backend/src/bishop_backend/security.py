"""Password hashing and access tokens."""

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

ALGORITHM = "HS256"
# One lane, so that a hash takes one core. With Argon2's usual four, every hash ran on four
# threads, and a burst of sign-ins took all the cores from the rest of the API, however small
# the pool below. Memory and passes, what a guessing attacker pays for, stay the defaults
# (64 MiB, 3); OWASP's recommended settings use one lane too. Older four-lane hashes still
# verify, and are replaced at the next sign-in.
_hasher = PasswordHash((Argon2Hasher(parallelism=1),))
# Verifying against this keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


# Argon2 takes tens of milliseconds of several cores on purpose. It runs off the event loop, on
# at most half the cores, so a burst of sign-ins queues behind itself and slows down sign-ins,
# not every other request.
_hashing = ThreadPoolExecutor(
    max_workers=max(1, (os.cpu_count() or 2) // 2), thread_name_prefix="password-hash"
)


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_hashing, _hasher.hash, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Whether `password` matches, and a new hash to store when `hashed` has old settings."""
    matches, updated = await asyncio.get_running_loop().run_in_executor(
        _hashing, _hasher.verify_and_update, password, hashed or _DUMMY_HASH
    )
    return matches and hashed is not None, updated


@dataclass(frozen=True)
class AccessToken:
    user_id: uuid.UUID
    token_id: str  # what sign-out revokes
    expires_at: datetime


def create_access_token(user_id: uuid.UUID, secret: str, expires: timedelta) -> str:
    payload = {"sub": str(user_id), "exp": datetime.now(UTC) + expires, "jti": uuid.uuid4().hex}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def read_access_token(token: str, secret: str) -> AccessToken | None:
    try:
        # A token without an expiry would be valid for ever, one without an id could not be
        # revoked: both refused.
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "jti"]}
        )
        return AccessToken(
            user_id=uuid.UUID(payload["sub"]),
            token_id=str(payload["jti"])[:64],
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError, OverflowError):
        return None
