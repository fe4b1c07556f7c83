"""Column helpers shared by the tables."""

import inspect
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, TypeDecorator
from sqlmodel import Field

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def factory(make: Callable[[], T]) -> Callable[[], T]:
    """`make` as a field's `default_factory`. Pydantic reads a factory's signature every time a
    row object is built (to see whether it takes the data validated so far): 176 µs for `list`,
    most of the 450 µs a message took to build. A declared signature is read in 3 µs."""

    def made() -> T:
        return make()

    made.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
    return made


new_id = factory(uuid.uuid4)
now = factory(utcnow)
empty_list: Callable[[], list[Any]] = factory(list)
empty_dict: Callable[[], dict[str, Any]] = factory(dict)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back with its timezone: SQLite stores none, so the API
    would otherwise send Postgres rows as `...+00:00` and SQLite rows as local-looking times."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def id_field() -> uuid.UUID:
    return Field(default_factory=new_id, primary_key=True)


def created_field() -> datetime:
    return Field(default_factory=now, sa_type=UTCDateTime, nullable=False)


def owner_field(table: str) -> uuid.UUID:
    """Foreign key whose rows go away with their owner."""
    return Field(foreign_key=f"{table}.id", ondelete="CASCADE", index=True, nullable=False)


def updated_field() -> datetime:
    """When the row last changed: the sweeper measures how long a reply, material or run has
    been waiting from here."""
    return Field(
        default_factory=now,
        sa_type=UTCDateTime,
        nullable=False,
        sa_column_kwargs={"onupdate": utcnow},
    )
