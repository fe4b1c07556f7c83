"""Route dependencies: each one loads what a route needs and 404s for anything not the user's."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.errors import Forbidden, NotFound, Unauthorized
from bishop_backend.infra import Infra
from bishop_backend.models import Avatar, Chat, Material, Message, User
from bishop_backend.security import read_access_token
from bishop_backend.services.idempotency import HEADER, Idempotency

API_PREFIX = "/api/v1"


def get_infra(request: Request) -> Infra:
    return request.app.state.infra


InfraDep = Annotated[Infra, Depends(get_infra)]


async def get_session(infra: InfraDep) -> AsyncIterator[AsyncSession]:
    async with infra.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
TokenDep = Annotated[
    str, Depends(OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/login/access-token"))
]


async def get_current_user(session: SessionDep, infra: InfraDep, token: TokenDep) -> User:
    user_id = read_access_token(token, infra.secret_key)
    user = await session.get(User, user_id) if user_id else None
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
