from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import col, select

from bishop_backend.api.deps import (
    ClientAddress,
    CurrentSuperuser,
    CurrentToken,
    CurrentUser,
    InfraDep,
    SessionDep,
    get_current_user,
)
from bishop_backend.api.responses import errors
from bishop_backend.errors import BadRequest
from bishop_backend.limits import PageDep
from bishop_backend.models import RevokedToken, Token, User, UserCreate, UserPublic, UserSignup
from bishop_backend.security import create_access_token
from bishop_backend.services import users

router = APIRouter(tags=["users"])


@router.post("/users/signup", response_model=UserPublic, status_code=201, responses=errors(409))
async def signup(
    session: SessionDep, infra: InfraDep, client: ClientAddress, user_in: UserSignup
) -> User:
    await infra.throttle.signup_attempt(client)
    return await users.create_user(session, UserCreate.model_validate(user_in))


@router.get("/users/me", response_model=UserPublic)
async def read_me(user: CurrentUser) -> User:
    return user


@router.post("/users", response_model=UserPublic, status_code=201, responses=errors(409))
async def create_user(session: SessionDep, _: CurrentSuperuser, user_in: UserCreate) -> User:
    return await users.create_user(session, user_in)


@router.get("/users", response_model=list[UserPublic])
async def list_users(session: SessionDep, _: CurrentSuperuser, page: PageDep) -> list[User]:
    query = select(User).order_by(col(User.created_at)).offset(page.skip).limit(page.limit)
    return list((await session.exec(query)).all())


@router.post("/login/access-token")
async def login(
    session: SessionDep,
    infra: InfraDep,
    client: ClientAddress,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    await infra.throttle.login_attempt(client, form.username)
    try:
        user = await users.authenticate(session, form.username, form.password)
    except BadRequest:
        await infra.throttle.login_failed(form.username)
        raise
    expires = infra.settings.access_token_expire_minutes
    return Token(
        access_token=create_access_token(user.id, infra.secret_key, timedelta(minutes=expires))
    )


@router.post("/logout", status_code=204, dependencies=[Depends(get_current_user)])
async def logout(session: SessionDep, access: CurrentToken) -> None:
    """Sign out: this token stops working now, not when it expires."""
    await session.merge(RevokedToken(token_id=access.token_id, expires_at=access.expires_at))
    await session.commit()


@router.post("/login/test-token", response_model=UserPublic)
async def test_token(user: CurrentUser) -> User:
    return user
