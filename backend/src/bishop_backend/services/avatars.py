"""Avatars: create, list, update, delete (with everything stored under them), where each one
stands (its lifecycle) and its portrait."""

import uuid
from typing import Any

from bishop_infra.storage import Storage
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.requests import Request

from bishop_backend.errors import BadRequest, NotFound, PayloadTooLarge
from bishop_backend.keys import avatar_prefix
from bishop_backend.models import (
    AdapterVersion,
    Avatar,
    AvatarCreate,
    AvatarPublic,
    AvatarStatus,
    AvatarUpdate,
    Lifecycle,
    Material,
    MaterialStatus,
    RunStatus,
    TrainingRun,
    User,
)
from bishop_backend.services.sniff import IMAGE_TYPES, image_type
from bishop_backend.services.uploads import read_form

PORTRAIT_MAX_BYTES = 2 * 1024 * 1024


def _count_text(*statuses: MaterialStatus) -> Any:
    return (
        select(func.count())
        .where(
            Material.avatar_id == Avatar.id,
            Material.type == "basic",
            col(Material.status).in_(statuses),
        )
        .correlate(Avatar)
        .scalar_subquery()
    )


def _described() -> Any:
    """Avatars with what their lifecycle is computed from, in one query for any number."""
    version = (
        select(AdapterVersion.number)
        .where(AdapterVersion.id == Avatar.active_version_id)
        .correlate(Avatar)
        .scalar_subquery()
    )
    last_run = (
        select(TrainingRun.status)
        .where(TrainingRun.avatar_id == Avatar.id)
        .order_by(col(TrainingRun.created_at).desc())
        .limit(1)
        .correlate(Avatar)
        .scalar_subquery()
    )
    return select(
        Avatar,
        _count_text(MaterialStatus.PROCESSED),
        _count_text(MaterialStatus.UPLOADED, MaterialStatus.PROCESSING),
        version,
        last_run,
    )


def lifecycle(
    avatar: Avatar, processed: int, pending: int, version: int | None, last_run: str | None
) -> Lifecycle:
    """Where the avatar stands: an avatar with no trained version is never "trained"."""
    if avatar.status in (AvatarStatus.QUEUED, AvatarStatus.TRAINING):
        return Lifecycle.TRAINING
    if version is not None:
        # A later run that failed leaves the avatar chatting on this version: it is trained
        # (the failure is in `status_detail`).
        return Lifecycle.TRAINED
    if avatar.status == AvatarStatus.FAILED:
        return Lifecycle.FAILED
    if last_run == RunStatus.STOPPED:
        return Lifecycle.STOPPED
    if processed:
        return Lifecycle.MATERIALS_READY
    if pending:
        return Lifecycle.PROCESSING
    return Lifecycle.NO_MATERIALS


def _public(row: Any) -> AvatarPublic:
    avatar, processed, pending, version, last_run = row
    return AvatarPublic.model_validate(
        avatar,
        update={
            "lifecycle": lifecycle(avatar, processed, pending, version, last_run),
            "version_number": version,
            "has_portrait": avatar.portrait_key is not None,
        },
    )


async def describe(session: AsyncSession, avatar: Avatar) -> AvatarPublic:
    """The avatar as the API shows it, with its lifecycle."""
    row = (await session.exec(_described().where(Avatar.id == avatar.id))).first()
    if row is None:
        raise NotFound("Avatar not found")
    return _public(row)


async def list_avatars(
    session: AsyncSession, owner: User, skip: int, limit: int
) -> list[AvatarPublic]:
    query = (
        _described()
        .where(Avatar.owner_id == owner.id)
        .order_by(col(Avatar.created_at))
        .offset(skip)
        .limit(limit)
    )
    return [_public(row) for row in (await session.exec(query)).all()]


async def create_avatar(session: AsyncSession, owner: User, avatar_in: AvatarCreate) -> Avatar:
    avatar = Avatar.model_validate(avatar_in, update={"owner_id": owner.id})
    session.add(avatar)
    await session.commit()
    return avatar


async def update_avatar(session: AsyncSession, avatar: Avatar, avatar_in: AvatarUpdate) -> Avatar:
    avatar.sqlmodel_update(avatar_in.model_dump(exclude_unset=True, exclude_none=True))
    session.add(avatar)
    await session.commit()
    return avatar


async def delete_avatar(session: AsyncSession, storage: Storage, avatar: Avatar) -> None:
    owner_id: uuid.UUID = avatar.owner_id
    avatar_id: uuid.UUID = avatar.id
    await session.delete(avatar)
    await session.commit()
    # Rows first: objects without rows are invisible garbage; rows without objects would be errors.
    # The portrait lies under the same prefix.
    await storage.delete_prefix(avatar_prefix(owner_id, avatar_id))


def portrait_content_type(key: str) -> str:
    return IMAGE_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


async def read_portrait(request: Request) -> bytes:
    """The image of a multipart upload's `file` field, refused past the portrait limit."""
    # Room for the multipart framing around a file of the largest allowed size.
    form = await read_form(request, max_bytes=PORTRAIT_MAX_BYTES + 64 * 1024, max_files=1)
    try:
        upload = form.get("file")
        if not isinstance(upload, StarletteUpload):
            raise BadRequest("Send the image as the form field `file`.")
        body = await upload.read(PORTRAIT_MAX_BYTES + 1)
    finally:
        await form.close()
    if len(body) > PORTRAIT_MAX_BYTES:
        raise PayloadTooLarge("The portrait is larger than 2 MB; choose a smaller image.")
    return body


async def put_portrait(
    session: AsyncSession, storage: Storage, avatar: Avatar, body: bytes
) -> AvatarPublic:
    """Store a new portrait and drop the old one (a new key each time: no stale caches)."""
    # By content: the name and the declared type of an upload are the sender's word.
    ext = image_type(body[:16], "The portrait must be a PNG, JPEG or WebP image.")
    key = f"{avatar_prefix(avatar.owner_id, avatar.id)}portrait/{uuid.uuid4()}.{ext}"
    await storage.put_bytes(key, body, IMAGE_TYPES[ext])
    old, avatar.portrait_key = avatar.portrait_key, key
    session.add(avatar)
    await session.commit()
    if old:
        await storage.delete(old)
    return await describe(session, avatar)


async def delete_portrait(session: AsyncSession, storage: Storage, avatar: Avatar) -> None:
    old, avatar.portrait_key = avatar.portrait_key, None
    if old is None:
        return
    session.add(avatar)
    await session.commit()
    await storage.delete(old)


def portrait_key(avatar: Avatar) -> str:
    if avatar.portrait_key is None:
        raise NotFound("This avatar has no portrait")
    return avatar.portrait_key
