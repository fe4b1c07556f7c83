import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from bishop_backend.api.deps import CurrentUser, InfraDep, OwnedAvatar, SessionDep
from bishop_backend.api.responses import errors, not_json
from bishop_backend.limits import PageDep
from bishop_backend.models import (
    ActiveVersionUpdate,
    AdapterVersionPublic,
    AvatarCreate,
    AvatarPublic,
    AvatarUpdate,
    VersionUpdate,
)
from bishop_backend.services import avatars, training
from bishop_backend.services.downloads import object_response

router = APIRouter(prefix="/avatars", tags=["avatars"])

PORTRAIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.get("", response_model=list[AvatarPublic])
async def list_avatars(session: SessionDep, user: CurrentUser, page: PageDep) -> list[AvatarPublic]:
    return await avatars.list_avatars(session, user, page.skip, page.limit)


@router.post("", response_model=AvatarPublic, status_code=201)
async def create_avatar(
    session: SessionDep, user: CurrentUser, avatar_in: AvatarCreate
) -> AvatarPublic:
    return await avatars.describe(session, await avatars.create_avatar(session, user, avatar_in))


@router.get("/{avatar_id}", response_model=AvatarPublic)
async def read_avatar(session: SessionDep, avatar: OwnedAvatar) -> AvatarPublic:
    return await avatars.describe(session, avatar)


# One route per method: each gets its own operation id in the OpenAPI document.
@router.put("/{avatar_id}", response_model=AvatarPublic)
@router.patch("/{avatar_id}", response_model=AvatarPublic)
async def update_avatar(
    session: SessionDep, avatar: OwnedAvatar, avatar_in: AvatarUpdate
) -> AvatarPublic:
    return await avatars.describe(session, await avatars.update_avatar(session, avatar, avatar_in))


@router.delete("/{avatar_id}", status_code=204)
async def delete_avatar(session: SessionDep, infra: InfraDep, avatar: OwnedAvatar) -> None:
    await avatars.delete_avatar(session, infra.storage, avatar)


@router.get(
    "/{avatar_id}/portrait",
    response_class=StreamingResponse,
    openapi_extra=not_json("image/*", "The portrait (PNG, JPEG or WebP)"),
)
async def read_portrait(infra: InfraDep, avatar: OwnedAvatar) -> Response:
    key = avatars.portrait_key(avatar)
    return await object_response(infra.storage, key, avatars.portrait_content_type(key))


@router.put(
    "/{avatar_id}/portrait",
    response_model=AvatarPublic,
    openapi_extra=PORTRAIT_BODY,
    # The route reads its multipart body itself: FastAPI sees no body to document these for.
    responses=errors(400, 413, 415),
)
async def put_portrait(
    request: Request, session: SessionDep, infra: InfraDep, avatar: OwnedAvatar
) -> AvatarPublic:
    """Set the portrait: a PNG, JPEG or WebP image of at most 2 MB as the form field `file`."""
    body = await avatars.read_portrait(request)
    return await avatars.put_portrait(session, infra.storage, avatar, body)


@router.delete("/{avatar_id}/portrait", status_code=204)
async def delete_portrait(session: SessionDep, infra: InfraDep, avatar: OwnedAvatar) -> None:
    await avatars.delete_portrait(session, infra.storage, avatar)


@router.get("/{avatar_id}/versions", response_model=list[AdapterVersionPublic])
async def list_versions(session: SessionDep, avatar: OwnedAvatar) -> list[AdapterVersionPublic]:
    return await training.versions(session, avatar)


@router.put("/{avatar_id}/versions/active", response_model=AvatarPublic)
async def activate_version(
    session: SessionDep, avatar: OwnedAvatar, body: ActiveVersionUpdate
) -> AvatarPublic:
    return await avatars.describe(
        session, await training.activate(session, avatar, body.version_id)
    )


@router.patch("/{avatar_id}/versions/{version_id}", response_model=AdapterVersionPublic)
async def update_version(
    session: SessionDep, avatar: OwnedAvatar, version_id: uuid.UUID, body: VersionUpdate
) -> AdapterVersionPublic:
    """Change a version's note (plain text, at most 500 characters)."""
    return await training.set_note(session, avatar, version_id, body.note)
