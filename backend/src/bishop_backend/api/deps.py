"""Route dependencies: each one loads what a route needs and 404s for anything not the user's."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.errors import Forbidden, NotFound, Unauthorized
from bishop_backend.infra import Infra
from bishop_backend.models import Avatar, Chat, Material, Message, RevokedToken, User
from bishop_backend.security import AccessToken, read_access_token
from bishop_backend.services.idempotency import HEADER, Idempotency

API_PREFIX = "/api/v1"


def get_infra(request: Request) -> Infra:
    return request.app.state.infra


InfraDep = Annotated[Infra, Depends(get_infra)]


def get_client_address(request: Request) -> str:
    # uvicorn has already replaced a trusted proxy's address with the X-Forwarded-For client.
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(get_client_address)]


async def get_session(infra: InfraDep) -> AsyncIterator[AsyncSession]:
    async with infra.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
TokenDep = Annotated[
    str, Depends(OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/login/access-token"))
]


async def get_access_token(session: SessionDep, infra: InfraDep, token: TokenDep) -> AccessToken:
    access = read_access_token(token, infra.secret_key)
    if access is None:
        raise Unauthorized("Could not validate credentials")
    if await session.get(RevokedToken, access.token_id) is not None:
        raise Unauthorized("This session has been signed out; sign in again")
    return access


CurrentToken = Annotated[AccessToken, Depends(get_access_token)]


async def get_current_user(session: SessionDep, access: CurrentToken) -> User:
    user = await session.get(User, access.user_id)
    if user is None:
        raise Unauthorized("Could not validate credentials")
    if not user.is_active:
        raise Forbidden("Inactive user")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> User:
    if not user.is_superuser:
        raise Forbidden("The user doesn't have enough privileges")
    return user


CurrentSuperuser = Annotated[User, Depends(get_current_superuser)]


async def get_owned_avatar(avatar_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Avatar:
    avatar = await session.get(Avatar, avatar_id)
    if avatar is None or avatar.owner_id != user.id:
        raise NotFound("Avatar not found")
    return avatar


OwnedAvatar = Annotated[Avatar, Depends(get_owned_avatar)]


async def get_owned_chat(chat_id: uuid.UUID, avatar: OwnedAvatar, session: SessionDep) -> Chat:
    chat = await session.get(Chat, chat_id)
    if chat is None or chat.avatar_id != avatar.id:
        raise NotFound("Chat not found")
    return chat


OwnedChat = Annotated[Chat, Depends(get_owned_chat)]


async def get_owned_message(msg_id: uuid.UUID, chat: OwnedChat, session: SessionDep) -> Message:
    message = await session.get(Message, msg_id)
    if message is None or message.chat_id != chat.id:
        raise NotFound("Message not found")
    return message


OwnedMessage = Annotated[Message, Depends(get_owned_message)]


async def get_owned_material(
    material_id: uuid.UUID, avatar: OwnedAvatar, session: SessionDep
) -> Material:
    material = await session.get(Material, material_id)
    if material is None or material.avatar_id != avatar.id:
        raise NotFound("Material not found")
    return material


OwnedMaterial = Annotated[Material, Depends(get_owned_material)]


async def get_idempotency(
    request: Request,
    user: CurrentUser,
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=255,
            description="Send the same key again to repeat a request safely: "
            "the first result is returned and nothing new is created.",
        ),
    ] = None,
) -> Idempotency | None:
    if key is None:
        return None
    return Idempotency(user.id, key, f"{request.method} {request.url.path.rstrip('/')}")


IdempotencyDep = Annotated[Idempotency | None, Depends(get_idempotency)]


RangeHeader = Annotated[
    str | None,
    Header(
        alias="Range",
        max_length=200,
        description="One byte range (`bytes=START-END`): 206 with that part, 416 outside it.",
    ),
]
