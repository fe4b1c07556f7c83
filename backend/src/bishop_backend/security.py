"""Password hashing and access tokens."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash

ALGORITHM = "HS256"
_hasher = PasswordHash.recommended()
# Verifying against this keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


# Argon2 takes tens of milliseconds of CPU on purpose: off the event loop, so a burst of logins
# slows down logins, not every other request.


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, hashed: str | None) -> bool:
    matches = await asyncio.to_thread(_hasher.verify, password, hashed or _DUMMY_HASH)
    return matches and hashed is not None


def create_access_token(user_id: uuid.UUID, secret: str, expires: timedelta) -> str:
    payload = {"sub": str(user_id), "exp": datetime.now(UTC) + expires}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def read_access_token(token: str, secret: str) -> uuid.UUID | None:
    try:
        # A token without an expiry would be valid for ever: refused.
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
        return uuid.UUID(payload["sub"])
    except (jwt.InvalidTokenError, KeyError, ValueError):
        return None
