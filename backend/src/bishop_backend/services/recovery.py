"""After a restart with the in-process bus, nothing that was in flight can still arrive: the
workers' events died with the process. Close it all with a reason instead of waiting forever."""

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.models import (
    Avatar,
    Material,
    MaterialStatus,
    Message,
    ReplyStatus,
    RunStatus,
    TrainingRun,
)
from bishop_backend.models.training import ACTIVE_RUN_STATUSES
from bishop_backend.services.training import end_run

RESTARTED = "Bishop restarted while this was in progress"


async def abandon_in_flight(session: AsyncSession) -> None:
    runs = (
        await session.exec(
            select(TrainingRun).where(col(TrainingRun.status).in_(ACTIVE_RUN_STATUSES))
        )
    ).all()
    for run in runs:
        avatar = await session.get(Avatar, run.avatar_id)
        if avatar is not None:
            end_run(session, run, avatar, RunStatus.FAILED, f"{RESTARTED}; start training again")
    await session.exec(  # type: ignore[call-overload]
        update(Message)
        .where(col(Message.status) == ReplyStatus.PENDING)
        .values(status=ReplyStatus.FAILED, error=f"{RESTARTED}; send the message again")
    )
    await session.exec(  # type: ignore[call-overload]
        update(Message)
        .where(col(Message.dub_status) == ReplyStatus.PENDING)
        .values(dub_status=ReplyStatus.FAILED, error=f"{RESTARTED}; the voice was not made")
    )
    await session.exec(  # type: ignore[call-overload]
        update(Material)
        .where(col(Material.status).in_([MaterialStatus.UPLOADED, MaterialStatus.PROCESSING]))
        .values(
            status=MaterialStatus.FAILED,
            status_detail=f"{RESTARTED}; delete it and upload it again",
        )
    )
    await session.commit()
