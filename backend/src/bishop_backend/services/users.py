"""Accounts: signup, login, superuser bootstrap."""

from bishop_contracts.text import input_problem
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bishop_backend.errors import BadRequest, Conflict
from bishop_backend.models import User, UserCreate
from bishop_backend.security import hash_password, verify_password

DUPLICATE_EMAIL = "The user with this email already exists in the system"
BAD_LOGIN = "Incorrect email or password"


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.exec(select(User).where(User.email == email.lower()))
    return result.first()


async def create_user(session: AsyncSession, user_in: UserCreate) -> User:
    hashed = await hash_password(user_in.password)
    user = User.model_validate(
        user_in, update={"email": user_in.email.lower(), "hashed_password": hashed}
    )
    if await get_by_email(session, user.email) is not None:
        raise Conflict(DUPLICATE_EMAIL)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:  # a concurrent signup with the same email won the race
        await session.rollback()
        raise Conflict(DUPLICATE_EMAIL) from None
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    if input_problem(email, multiline=False) is not None:
        raise BadRequest(BAD_LOGIN)  # no such address can exist (Postgres refuses NUL outright)
    user = await get_by_email(session, email)
    # Ends the read, so its pooled connection is free during the hash check (tens of ms of CPU,
    # queued behind other logins in a burst): held, a burst of logins emptied the pool and
    # requests waiting for a connection timed out with 503.
    await session.commit()
    matches, rehashed = await verify_password(password, user.hashed_password if user else None)
    if not matches or user is None:
        raise BadRequest(BAD_LOGIN)
    if not user.is_active:
        raise BadRequest("Inactive user")
    if rehashed is not None:
        user.hashed_password = rehashed
        session.add(user)
        await session.commit()
    return user


async def ensure_superuser(session: AsyncSession, email: str, password: str) -> None:
    if await get_by_email(session, email) is None:
        await create_user(session, UserCreate(email=email, password=password, is_superuser=True))
