from fastapi import APIRouter

from bishop_backend.api.deps import CurrentUser, InfraDep, OwnedAvatar, SessionDep
from bishop_backend.limits import PageDep
from bishop_backend.models import (
    ActiveVersionUpdate,
    AdapterVersionPublic,
    Avatar,
    AvatarCreate,
    AvatarPublic,
    AvatarUpdate,
)
from bishop_backend.services import avatars, training

router = APIRouter(prefix="/avatars", tags=["avatars"])


@router.get("", response_model=list[AvatarPublic])
async def list_avatars(session: SessionDep, user: CurrentUser, page: PageDep) -> list[Avatar]:
    return await avatars.list_avatars(session, user, page.skip, page.limit)


@router.post("", response_model=AvatarPublic, status_code=201)
async def create_avatar(session: SessionDep, user: CurrentUser, avatar_in: AvatarCreate) -> Avatar:
    return await avatars.create_avatar(session, user, avatar_in)


@router.get("/{avatar_id}", response_model=AvatarPublic)
async def read_avatar(avatar: OwnedAvatar) -> Avatar:
    return avatar


# One route per method: each gets its own operation id in the OpenAPI document.
@router.put("/{avatar_id}", response_model=AvatarPublic)
@router.patch("/{avatar_id}", response_model=AvatarPublic)
async def update_avatar(
    session: SessionDep, avatar: OwnedAvatar, avatar_in: AvatarUpdate
) -> Avatar:
    return await avatars.update_avatar(session, avatar, avatar_in)


@router.delete("/{avatar_id}", status_code=204)
async def delete_avatar(session: SessionDep, infra: InfraDep, avatar: OwnedAvatar) -> None:
    await avatars.delete_avatar(session, infra.storage, avatar)


@router.get("/{avatar_id}/versions", response_model=list[AdapterVersionPublic])
async def list_versions(session: SessionDep, avatar: OwnedAvatar) -> list[AdapterVersionPublic]:
    return await training.versions(session, avatar)


@router.put("/{avatar_id}/versions/active", response_model=AvatarPublic)
async def activate_version(
    session: SessionDep, avatar: OwnedAvatar, body: ActiveVersionUpdate
) -> Avatar:
    return await training.activate(session, avatar, body.version_id)
