"""Training: start, stop, status and the avatar's adapter versions."""

import uuid

from bishop_contracts.events import TrainMaterial, TrainStart, TrainStop
from bishop_contracts.topics import Topic
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.errors import Conflict, NotFound
from bishop_backend.infra import Infra
from bishop_backend.models import (
    AdapterVersion,
    AdapterVersionPublic,
    Avatar,
    AvatarStatus,
    Material,
    MaterialStatus,
    RunStatus,
    TrainingPhase,
    TrainingRun,
    TrainingRunPublic,
    TrainingStatus,
)
from bishop_backend.models.common import utcnow
from bishop_backend.services.outbox import emit

TRAINING_STATES = (AvatarStatus.QUEUED, AvatarStatus.TRAINING)


async def start(infra: Infra, session: AsyncSession, avatar: Avatar) -> TrainingRun:
    """Queue a run on the avatar's processed materials. A second start while one runs is
    refused with 409 (not queued): the user stops the current run first."""
    async with infra.state.lock(f"avatar:{avatar.id}:training"):
        await session.refresh(avatar)
        if avatar.status in TRAINING_STATES:
            raise Conflict("Training is already running for this avatar")
        materials = await _trainable(session, avatar)
        run = TrainingRun(avatar_id=avatar.id, material_ids=[str(m.id) for m in materials])
        avatar.status = AvatarStatus.QUEUED
        avatar.status_detail = None
        session.add_all([run, avatar])
        emit(
            session,
            Topic.LLM_TRAIN,
            TrainStart(
                avatar_id=avatar.id,
                run_id=run.id,
                language=avatar.language,
                train_materials=[
                    TrainMaterial(
                        id=m.id,
                        type=m.type,  # type: ignore[arg-type]
                        url=m.storage_key,
                        transcript_url=m.transcript_key,
                    )
                    for m in materials
                ],
            ),
        )
        await session.commit()
    return run


async def _trainable(session: AsyncSession, avatar: Avatar) -> list[Material]:
    query = (
        select(Material).where(Material.avatar_id == avatar.id).order_by(col(Material.created_at))
    )
    materials = list((await session.exec(query)).all())
    text = [m for m in materials if m.type == "basic"]
    if not text:
        raise Conflict("Upload training materials (type basic) before starting training")
    if not any(m.status == MaterialStatus.PROCESSED for m in text):
        if any(m.status in (MaterialStatus.UPLOADED, MaterialStatus.PROCESSING) for m in text):
            raise Conflict(
                "Materials are still being processed; start training when they are ready"
            )
        raise Conflict("None of the materials could be processed; upload other materials")
    return [m for m in materials if m.status == MaterialStatus.PROCESSED]


async def stop(infra: Infra, session: AsyncSession, avatar: Avatar) -> TrainingRun:
    """Stop at once as far as the user sees; the worker confirms with `train_stopped`."""
    async with infra.state.lock(f"avatar:{avatar.id}:training"):
        await session.refresh(avatar)
        run = await current_run(session, avatar)
        if avatar.status not in TRAINING_STATES or run is None:
            raise Conflict("Training is not running")
        end_run(session, run, avatar, RunStatus.STOPPED, None)
        emit(session, Topic.LLM_TRAIN, TrainStop(avatar_id=avatar.id, run_id=run.id))
        await session.commit()
    return run


def end_run(
    session: AsyncSession, run: TrainingRun, avatar: Avatar, status: RunStatus, error: str | None
) -> None:
    """Close a run and put the avatar back to a resting state (not committed)."""
    run.status = status
    run.error = error
    run.finished_at = utcnow()
    avatar.status = AvatarStatus.FAILED if status == RunStatus.FAILED else AvatarStatus.AVAILABLE
    avatar.status_detail = error
    session.add_all([run, avatar])


async def current_run(session: AsyncSession, avatar: Avatar) -> TrainingRun | None:
    query = (
        select(TrainingRun)
        .where(TrainingRun.avatar_id == avatar.id)
        .order_by(col(TrainingRun.created_at).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()


def phase_key(run_id: uuid.UUID) -> str:
    return f"train-phase:{run_id}"


PHASE_TTL = 7 * 86400


async def status(infra: Infra, session: AsyncSession, avatar: Avatar) -> TrainingStatus:
    run = await current_run(session, avatar)
    return TrainingStatus(
        avatar_status=avatar.status,
        status_detail=avatar.status_detail,
        run=TrainingRunPublic.model_validate(run) if run else None,
        active_version_id=avatar.active_version_id,
        phase=await _phase(infra, avatar, run),
    )


async def _phase(infra: Infra, avatar: Avatar, run: TrainingRun | None) -> TrainingPhase | None:
    """What the active run is doing, as far as the text worker has said."""
    if run is None or avatar.status not in TRAINING_STATES:
        return None
    if run.status == RunStatus.TRAINING:
        return TrainingPhase.TRAINING
    reported = await infra.state.get_value(phase_key(run.id))
    if reported in (TrainingPhase.PREPARING, TrainingPhase.LOADING):
        return TrainingPhase(reported)
    return TrainingPhase.WAITING


async def versions(session: AsyncSession, avatar: Avatar) -> list[AdapterVersionPublic]:
    query = (
        select(AdapterVersion, TrainingRun.material_ids)
        .outerjoin(TrainingRun, col(TrainingRun.id) == col(AdapterVersion.run_id))
        .where(AdapterVersion.avatar_id == avatar.id)
        .order_by(col(AdapterVersion.number))
    )
    rows = list((await session.exec(query)).all())
    names = await _material_names(session, avatar, [i for _, ids in rows for i in ids or []])
    return [_public_version(avatar, v, ids or [], names) for v, ids in rows]


async def _material_names(session: AsyncSession, avatar: Avatar, ids: list[str]) -> dict[str, str]:
    wanted = {uuid.UUID(i) for i in ids}
    if not wanted:
        return {}
    query = select(Material.id, Material.filename).where(
        Material.avatar_id == avatar.id, col(Material.id).in_(wanted)
    )
    return {str(mid): name for mid, name in (await session.exec(query)).all()}


def _public_version(
    avatar: Avatar, version: AdapterVersion, material_ids: list[str], names: dict[str, str]
) -> AdapterVersionPublic:
    return AdapterVersionPublic.model_validate(
        version,
        update={
            "active": version.id == avatar.active_version_id,
            "materials": [{"id": i, "filename": names[i]} for i in material_ids if i in names],
            "material_count": len(material_ids),
        },
    )


async def _owned_version(
    session: AsyncSession, avatar: Avatar, version_id: uuid.UUID
) -> AdapterVersion:
    version = await session.get(AdapterVersion, version_id)
    if version is None or version.avatar_id != avatar.id:
        raise NotFound("Version not found")
    return version


async def set_note(
    session: AsyncSession, avatar: Avatar, version_id: uuid.UUID, note: str
) -> AdapterVersionPublic:
    version = await _owned_version(session, avatar, version_id)
    version.note = note.strip()
    session.add(version)
    await session.commit()
    run = await session.get(TrainingRun, version.run_id)
    ids = run.material_ids if run else []
    return _public_version(avatar, version, ids, await _material_names(session, avatar, ids))


async def activate(session: AsyncSession, avatar: Avatar, version_id: uuid.UUID) -> Avatar:
    version = await _owned_version(session, avatar, version_id)
    avatar.active_version_id = version.id
    session.add(avatar)
    await session.commit()
    return avatar
