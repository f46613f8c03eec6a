"""Shared fixtures: a database on SQLite and PostgreSQL, and the settings that point at it.

PostgreSQL runs use TEST_POSTGRES_URL (scripts/postgres.sh sets one up). Without it the
PostgreSQL variants skip, except under CI=true, where they fail: CI must never pass a
storage test it did not run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings, load_settings
from storage.database import Database, connect, upgrade

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"

pytest_plugins = ["tests.sandbox_fixtures"]


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    if not POSTGRES_URL:
        if IN_CI:
            pytest.fail("CI=true but TEST_POSTGRES_URL is not set: PostgreSQL tests must run")
        pytest.skip("TEST_POSTGRES_URL is not set (source scripts/postgres.sh)")
    await _reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = connect(database_url)
    await upgrade(db)
    yield db
    await db.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Test settings; `@pytest.mark.settings(NAME="value")` adds configuration variables."""
    marker = request.node.get_closest_marker("settings")
    extra = {str(k): str(v) for k, v in marker.kwargs.items()} if marker else {}
    env = {"DATABASE_URL": database_url, "CRISIS_DATA_DIR": str(tmp_path / "data")}
    return load_settings({**env, **extra})
