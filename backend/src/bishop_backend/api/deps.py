"""Route dependencies: each one loads what a route needs and 404s for anything not the user's."""

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from bishop_backend.errors import Forbidden, NotFound, Unauthorized
from bishop_backend.infra import Infra
from bishop_backend.models import Avatar, Chat, Material, Message, RevokedToken, User
from bishop_backend.security import AccessToken, read_access_token
from bishop_backend.services.idempotency import HEADER, Idempotency

API_PREFIX = "/api/v1"
T = TypeVar("T")


# Dependencies are coroutines even where they need not wait: FastAPI runs a plain function in a
# worker thread, a hand-over each way on every request.
async def get_infra(request: Request) -> Infra:
    return request.app.state.infra


InfraDep = Annotated[Infra, Depends(get_infra)]


async def get_client_address(request: Request) -> str:
    # uvicorn has already replaced a trusted proxy's address with the X-Forwarded-For client.
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(get_client_address)]


async def get_session(infra: InfraDep) -> AsyncIterator[AsyncSession]:
    async with infra.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_after_response() -> AsyncIterator[AsyncExitStack]:
    """What the route opens for its response, closed once the response is over: sent in full,
    cut off, or never begun."""
    async with AsyncExitStack() as resources:
        yield resources


AfterResponse = Annotated[AsyncExitStack, Depends(get_after_response)]
TokenDep = Annotated[
    str, Depends(OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/login/access-token"))
]


async def get_access_token(infra: InfraDep, token: TokenDep) -> AccessToken:
    """The request's valid token (revocation is checked with the user, in the same query)."""
    access = read_access_token(token, infra.secret_key)
    if access is None:
        raise Unauthorized("Could not validate credentials")
    return access


CurrentToken = Annotated[AccessToken, Depends(get_access_token)]


# Built once, with parameters (building a statement cost about 0.1 ms): every authenticated
# request checks its user, every chat route its chat. The user's check is one round trip: the
# user and whether this token was signed out.
_USER = (
    select(User, col(RevokedToken.token_id))
    .outerjoin(RevokedToken, col(RevokedToken.token_id) == bindparam("token"))
    .where(User.id == bindparam("user"))
)
_CHAT = (
    select(Chat, Avatar)
    .join(Avatar, col(Avatar.id) == col(Chat.avatar_id))
    .where(
        Chat.id == bindparam("chat"),
        Avatar.id == bindparam("avatar"),
        Avatar.owner_id == bindparam("user"),
    )
)


async def get_current_user(session: SessionDep, access: CurrentToken) -> User:
    params = {"token": access.token_id, "user": access.user_id}
    row = (await session.exec(_USER, params=params)).first()
    if row is None:
        raise Unauthorized("Could not validate credentials")
    user, revoked = row
    if revoked is not None:
        raise Unauthorized("This session has been signed out; sign in again")
    if not user.is_active:
        raise Forbidden("Inactive user")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> User:
    if not user.is_superuser:
        raise Forbidden("The user doesn't have enough privileges")
    return user


CurrentSuperuser = Annotated[User, Depends(get_current_superuser)]

# Each dependency below checks the whole chain up to the user in one joined query. The rows it
# loads stay in the session's identity map, where the outer dependencies find them with no
# query: a route that lists the innermost thing first (message, then chat, then avatar) costs
# one round trip for all three. A miss is explained by the outer dependency, so the 404 names
# the first thing in the path that is not the user's.


def _loaded(session: AsyncSession, model: type[T], ident: uuid.UUID) -> T | None:
    """`model` `ident` if this session has already loaded it (no query)."""
    return session.sync_session.identity_map.get(session.sync_session.identity_key(model, ident))


async def _first(
    session: AsyncSession, query: Select[Any], params: dict[str, Any] | None = None
) -> Any:
    """The first entity of the query's first row, or None."""
    row = (await session.exec(query, params=params)).first()
    if row is None:
        return None
    # The identity map holds its objects weakly: the parents loaded with the row are kept
    # alive for the request, or they would be gone before the outer dependency looks.
    session.info.setdefault("owned", []).append(row)
    return row[0]


async def get_owned_avatar(avatar_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Avatar:
    avatar = await session.get(Avatar, avatar_id)
    if avatar is None or avatar.owner_id != user.id:
        raise NotFound("Avatar not found")
    return avatar


OwnedAvatar = Annotated[Avatar, Depends(get_owned_avatar)]


async def get_owned_chat(
    avatar_id: uuid.UUID, chat_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Chat:
    chat = _loaded(session, Chat, chat_id)
    if chat is None:
        params = {"chat": chat_id, "avatar": avatar_id, "user": user.id}
        chat = await _first(session, _CHAT, params)
    avatar = await get_owned_avatar(avatar_id, user, session)
    if chat is None or chat.avatar_id != avatar.id:
        raise NotFound("Chat not found")
    return chat


OwnedChat = Annotated[Chat, Depends(get_owned_chat)]


async def get_owned_message(
    avatar_id: uuid.UUID,
    chat_id: uuid.UUID,
    msg_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
) -> Message:
    message = await _first(
        session,
        select(Message, Chat, Avatar)
        .join(Chat, col(Chat.id) == col(Message.chat_id))
        .join(Avatar, col(Avatar.id) == col(Chat.avatar_id))
        .where(
            Message.id == msg_id,
            Chat.id == chat_id,
            Avatar.id == avatar_id,
            Avatar.owner_id == user.id,
        ),
    )
    chat = await get_owned_chat(avatar_id, chat_id, user, session)
    if message is None or message.chat_id != chat.id:
        raise NotFound("Message not found")
    return message


OwnedMessage = Annotated[Message, Depends(get_owned_message)]


async def get_owned_material(
    avatar_id: uuid.UUID, material_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Material:
    material = await _first(
        session,
        select(Material, Avatar)
        .join(Avatar, col(Avatar.id) == col(Material.avatar_id))
        .where(Material.id == material_id, Avatar.id == avatar_id, Avatar.owner_id == user.id),
    )
    avatar = await get_owned_avatar(avatar_id, user, session)
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
