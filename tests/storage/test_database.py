from pathlib import Path

import aiosqlite
import pytest

from bot.storage.database import (
    BUSY_TIMEOUT_MS,
    Database,
    DatabaseTooNew,
    Migration,
    MigrationError,
    check_sequence,
    load_migrations,
    migrate,
    open_database,
    transaction,
    user_version,
)


async def scalar(conn: aiosqlite.Connection, sql: str) -> object:
    rows = list(await conn.execute_fetchall(sql))
    return rows[0][0] if rows else None


async def schema(conn: aiosqlite.Connection) -> list[tuple[str, str]]:
    rows = await conn.execute_fetchall("SELECT name, sql FROM sqlite_master ORDER BY name")
    return [(row[0], row[1]) for row in rows]


async def test_open_creates_the_folder_and_sets_the_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "bot.sqlite3"
    conn = await open_database(path)
    try:
        assert path.exists()
        assert await scalar(conn, "PRAGMA journal_mode") == "wal"
        assert await scalar(conn, "PRAGMA foreign_keys") == 1
        assert await scalar(conn, "PRAGMA busy_timeout") == BUSY_TIMEOUT_MS
        assert await scalar(conn, "PRAGMA synchronous") == 1  # NORMAL
        assert conn.row_factory is aiosqlite.Row
    finally:
        await conn.close()


async def test_migrating_an_empty_database_creates_the_schema(tmp_path: Path) -> None:
    conn = await open_database(tmp_path / "bot.sqlite3")
    try:
        applied = await migrate(conn)
        assert applied == ["0001_initial.sql"]
        assert await user_version(conn) == len(load_migrations())
        tables = {name for name, _ in await schema(conn)}
        assert {"jobs", "generations", "guild_settings"} <= tables
        assert {"jobs_by_requester", "jobs_by_guild", "jobs_by_status", "generations_succeeded"} <= tables
        assert not conn.in_transaction
    finally:
        await conn.close()


async def test_migrating_twice_changes_nothing(conn: aiosqlite.Connection) -> None:
    before = await schema(conn)
    assert await migrate(conn) == []
    assert await schema(conn) == before
    assert await user_version(conn) == len(load_migrations())


async def test_a_database_from_a_newer_bot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    async with Database(path) as conn:
        await conn.execute("PRAGMA user_version = 99")
    with pytest.raises(DatabaseTooNew, match=r"schema version 99.*only knows up to 1"):
        async with Database(path):
            pass
    conn = await open_database(path)
    try:
        assert await user_version(conn) == 99  # left as it was
    finally:
        await conn.close()


async def test_a_failing_migration_is_rolled_back_whole(conn: aiosqlite.Connection) -> None:
    broken = Migration(2, "0002_broken.sql", "CREATE TABLE half (x);\nINSERT INTO missing VALUES (1);")
    with pytest.raises(MigrationError, match=r"0002_broken\.sql"):
        await migrate(conn, [*load_migrations(), broken])
    assert await user_version(conn) == 1
    assert await scalar(conn, "SELECT name FROM sqlite_master WHERE name = 'half'") is None
    assert not conn.in_transaction


async def test_a_later_migration_applies_on_top(conn: aiosqlite.Connection) -> None:
    extra = Migration(2, "0002_extra.sql", "ALTER TABLE jobs ADD COLUMN note TEXT;")
    assert await migrate(conn, [*load_migrations(), extra]) == ["0002_extra.sql"]
    assert await user_version(conn) == 2
    assert await migrate(conn, [*load_migrations(), extra]) == []


@pytest.mark.parametrize("versions", [[2], [1, 3], [1, 1], [1, 2, 2]])
def test_migration_numbers_must_run_without_gaps_or_repeats(versions: list[int]) -> None:
    with pytest.raises(MigrationError, match="without gaps or repeats"):
        check_sequence([Migration(v, f"{v:04d}_x.sql", "") for v in versions])


def test_packaged_migrations_are_found_in_order() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_initial.sql"
    assert "CREATE TABLE jobs" in migrations[0].sql


async def test_transaction_commits_or_rolls_back(conn: aiosqlite.Connection) -> None:
    async with transaction(conn):
        await conn.execute("INSERT INTO guild_settings VALUES (1, '{}', 0)")
    with pytest.raises(RuntimeError):
        async with transaction(conn):
            await conn.execute("INSERT INTO guild_settings VALUES (2, '{}', 0)")
            raise RuntimeError("boom")
    assert [row[0] for row in await conn.execute_fetchall("SELECT guild_id FROM guild_settings")] == [1]
    assert not conn.in_transaction
