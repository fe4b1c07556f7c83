"""The migrations build exactly the schema the models describe, on both databases."""

import bishop_backend.models  # noqa: F401  (the tables the models declare)
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from bishop_backend.db import create_engine
from bishop_backend.migrations import upgrade
from sqlmodel import SQLModel

from tests.support import servers as srv


def _difference(sync_connection) -> list:  # type: ignore[no-untyped-def]
    context = MigrationContext.configure(sync_connection, opts={"compare_type": False})
    return [
        change
        for change in compare_metadata(context, SQLModel.metadata)
        # Alembic's own bookkeeping table is not a model.
        if not (change[0] == "remove_table" and change[1].name == "alembic_version")
    ]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_migrations_match_the_models(database: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = None
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    else:
        url, name = await srv.create_postgres_database()
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            difference = await conn.run_sync(_difference)
        assert difference == []
    finally:
        await engine.dispose()
        if name:
            await srv.drop_postgres_database(name)
