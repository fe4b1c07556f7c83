import uuid
from datetime import datetime

from pydantic import EmailStr
from sqlmodel import Field, SQLModel

from bishop_backend.models.common import UTCDateTime, created_field, id_field
from bishop_backend.models.text import SafeLine


class UserBase(SQLModel):
    email: EmailStr = Field(unique=True, index=True, max_length=255)
    full_name: str | None = Field(default=None, max_length=255)
    is_active: bool = True
    is_superuser: bool = False


class User(UserBase, table=True):
    id: uuid.UUID = id_field()
    hashed_password: str
    created_at: datetime = created_field()


class UserSignup(SQLModel):
    # EmailStr refuses control characters itself.
    email: EmailStr = Field(max_length=255)
    password: SafeLine = Field(min_length=8, max_length=40)
    full_name: SafeLine | None = Field(default=None, max_length=255)


class UserCreate(UserBase):
    """What a superuser may set when creating an account (thesis §6.2.1)."""

    password: SafeLine = Field(min_length=8, max_length=40)
    full_name: SafeLine | None = Field(default=None, max_length=255)


class UserPublic(UserBase):
    id: uuid.UUID


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"


class RevokedToken(SQLModel, table=True):
    """An access token signed out before it expired; kept until then, so a copied token stops
    working at once."""

    __tablename__ = "revoked_token"

    token_id: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
