from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.storage.database import Database
from bot.storage.jobs import JobRepository
from bot.storage.recorder import JobRecorder
from tests.storage.builders import FakeClock


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    async with Database(tmp_path / "data" / "bot.sqlite3") as connection:
        yield connection


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repo(conn: aiosqlite.Connection, clock: FakeClock) -> JobRepository:
    return JobRepository(conn, clock=clock)


@pytest.fixture
def recorder(repo: JobRepository) -> JobRecorder:
    return JobRecorder(repo)
