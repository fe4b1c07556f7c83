"""The sweeper: nothing waits forever. Replies, dubs, materials and training runs that stay in
a non-final state longer than their deadline are failed with a reason the user can read, so
the page shows it and the user can retry.

It runs in every mode, every `sweep_interval_seconds`. After an embedded restart nothing that
was in flight can still arrive (the in-process bus died with the process), so startup sweeps
with every deadline at zero.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.infra import Infra
from bishop_backend.models import (
    Avatar,
    Material,
    MaterialStatus,
    Message,
    ReplyStatus,
    RevokedToken,
    RunStatus,
    TrainingRun,
)
from bishop_backend.models.common import utcnow
from bishop_backend.services import replies
from bishop_backend.services.training import end_run

log = logging.getLogger("bishop.sweeper")
RESTARTED = "Bishop restarted while this was in progress"


@dataclass(frozen=True)
class Reasons:
    reply: str
    dub: str
    material: str
    run: str


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def overdue_reasons(infra: Infra) -> Reasons:
    s = infra.settings
    return Reasons(
        reply=f"No reply came within {_minutes(s.reply_deadline_seconds)}; "
        "the text worker may be down. Retry to ask again",
        dub=f"The voice was not made within {_minutes(s.dub_deadline_seconds)}; "
        "the sound worker may be down",
        material=f"Processing did not finish within {_minutes(s.material_deadline_seconds)}; "
        "delete the file and upload it again",
        run=f"Training reported no progress for {_minutes(s.run_deadline_seconds)}; "
        "start training again",
    )


RESTART_REASONS = Reasons(
    reply=f"{RESTARTED}; send the message again",
    dub=f"{RESTARTED}; the voice was not made",
    material=f"{RESTARTED}; delete it and upload it again",
    run=f"{RESTARTED}; start training again",
)


@dataclass
class Swept:
    replies: int = 0
    dubs: int = 0
    materials: int = 0
    runs: int = 0

    def __bool__(self) -> bool:
        return bool(self.replies or self.dubs or self.materials or self.runs)


async def sweep(infra: Infra, *, restarted: bool = False) -> Swept:
    """Fail everything overdue (with `restarted`, everything in flight); commits."""
    s = infra.settings
    now = utcnow()

    def cutoff(seconds: float) -> datetime:
        return now if restarted else now - timedelta(seconds=seconds)

    reasons = RESTART_REASONS if restarted else overdue_reasons(infra)
    swept = Swept()
    notes: list[tuple[uuid.UUID, str, str]] = []
    async with infra.sessions() as session:
        pending = col(Message.status) == ReplyStatus.PENDING
        for reply_id in await _ids(session, Message, pending, cutoff(s.reply_deadline_seconds)):
            if await fail_if(
                session, Message, reply_id, pending, status=ReplyStatus.FAILED, error=reasons.reply
            ):
                notes.append((reply_id, "error", reasons.reply))
                swept.replies += 1
        dubbing = col(Message.dub_status) == ReplyStatus.PENDING
        for reply_id in await _ids(session, Message, dubbing, cutoff(s.dub_deadline_seconds)):
            failed = {"dub_status": ReplyStatus.FAILED, "error": reasons.dub}
            if await fail_if(session, Message, reply_id, dubbing, **failed):
                notes.append((reply_id, "dub_error", reasons.dub))
                swept.dubs += 1
        in_progress = col(Material.status).in_([MaterialStatus.UPLOADED, MaterialStatus.PROCESSING])
        for material_id in await _ids(
            session, Material, in_progress, cutoff(s.material_deadline_seconds)
        ):
            swept.materials += await fail_if(
                session,
                Material,
                material_id,
                in_progress,
                status=MaterialStatus.FAILED,
                status_detail=reasons.material,
            )
        active = col(TrainingRun.status).in_([RunStatus.QUEUED, RunStatus.TRAINING])
        run_cutoff = cutoff(s.run_deadline_seconds)
        for run_id in await _ids(session, TrainingRun, active, run_cutoff):
            # Claimed while still overdue: a progress or finish event committed meanwhile wins.
            still_overdue = and_(active, col(TrainingRun.updated_at) <= run_cutoff)
            if not await fail_if(session, TrainingRun, run_id, still_overdue, updated_at=now):
                continue
            run = await session.get(TrainingRun, run_id, populate_existing=True)
            avatar = await session.get(Avatar, run.avatar_id) if run else None
            if run is not None and avatar is not None:
                end_run(session, run, avatar, RunStatus.FAILED, reasons.run)
                swept.runs += 1
        # A signed-out token past its expiry is refused anyway: its row is no longer needed.
        await session.exec(delete(RevokedToken).where(col(RevokedToken.expires_at) < now))  # type: ignore[call-overload]
        await session.commit()
    for reply_id, kind, reason in notes:
        await replies.notify(infra, reply_id, kind, reason=reason)
    if swept:
        log.warning("swept %s", swept)
    return swept


async def _ids(session: AsyncSession, table: type, condition: object, cutoff: datetime) -> list:
    query = select(table.id).where(condition, col(table.updated_at) <= cutoff)  # type: ignore[attr-defined]
    return list((await session.exec(query)).all())


async def fail_if(
    session: AsyncSession, table: type, row_id: uuid.UUID, condition: Any, **values: object
) -> int:
    """Set `values` on the row only if `condition` still holds, in one statement: a worker's
    answer committed a moment ago is never overwritten by a failure. Returns rows changed."""
    result = await session.exec(  # type: ignore[call-overload]
        update(table)
        .where(col(table.id) == row_id, condition)  # type: ignore[attr-defined]
        .values(**values)
        # Objects already loaded keep their values: the callers reload what they go on using
        # (matching the condition against every loaded object cost more than the write).
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def sweep_forever(infra: Infra) -> None:
    while True:
        await asyncio.sleep(infra.settings.sweep_interval_seconds)
        try:
            await sweep(infra)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an outage: the next round tries again
            log.warning("sweep failed: %s", exc)
