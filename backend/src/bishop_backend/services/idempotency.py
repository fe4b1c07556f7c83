"""Client-safe resends: a request sent again with the same `Idempotency-Key` returns the first
result and creates nothing (the approach of Stripe's API and the IETF Idempotency-Key draft).

The result is stored in the same transaction as what the request created, so a client that
lost the answer (a timeout, a dropped connection, a backend killed after its commit) can
resend and learn what happened.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.errors import Conflict
from bishop_backend.models import IdempotencyRecord
from bishop_backend.models.common import utcnow

HEADER = "Idempotency-Key"
RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class Idempotency:
    user_id: uuid.UUID
    key: str
    # The method and path the key was first used with: a key reused for another request is
    # refused rather than answered with an unrelated result.
    scope: str

    async def replay(self, session: AsyncSession, content: str = "") -> JSONResponse | None:
        """The stored result of an earlier request with this key, if there was one."""
        record = await session.get(IdempotencyRecord, (self.user_id, self.key))
        if record is None:
            return None
        if record.scope != self.scope or (
            record.fingerprint and content and record.fingerprint != _fingerprint(content)
        ):
            raise Conflict(f"This {HEADER} was already used for another request")
        return JSONResponse(
            record.body, status_code=record.status_code, headers={"Idempotent-Replayed": "true"}
        )

    def remember(
        self, session: AsyncSession, status_code: int, body: Any, fingerprint: str = ""
    ) -> None:
        """Store the result with the changes it reports on (committed by the caller)."""
        session.add(
            IdempotencyRecord(
                user_id=self.user_id,
                key=self.key,
                scope=self.scope,
                fingerprint=_fingerprint(fingerprint) if fingerprint else "",
                status_code=status_code,
                body=jsonable_encoder(body),
            )
        )


async def prune(session: AsyncSession) -> None:
    cutoff = utcnow() - RETENTION
    await session.exec(  # type: ignore[call-overload]
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < cutoff)
    )


def _fingerprint(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
