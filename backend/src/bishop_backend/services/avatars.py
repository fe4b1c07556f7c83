"""Avatars: create, list, update, delete (with everything stored under them)."""

import uuid

from bishop_infra.storage import Storage
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.keys import avatar_prefix
from bishop_backend.models import Avatar, AvatarCreate, AvatarUpdate, User


async def list_avatars(session: AsyncSession, owner: User, skip: int, limit: int) -> list[Avatar]:
    query = (
        select(Avatar)
        .where(Avatar.owner_id == owner.id)
        .order_by(col(Avatar.created_at))
        .offset(skip)
        .limit(limit)
    )
    return list((await session.exec(query)).all())


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
    await storage.delete_prefix(avatar_prefix(owner_id, avatar_id))
