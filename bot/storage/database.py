"""The SQLite connection: opening it with the settings the bot relies on, numbered migrations, and the lock
that keeps coroutines sharing one connection out of each other's transactions."""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType

import aiosqlite

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StorageError(Exception):
    """Base of every error the storage layer raises itself."""


class MigrationError(StorageError):
    """The migration files are inconsistent, or one of them failed (and was rolled back)."""


class DatabaseTooNew(StorageError):
    """The database was migrated by a newer version of the bot than this one."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The packaged `migrations/NNNN_*.sql` files in order; read through importlib.resources so an
    installed wheel works too. Numbers must run 1, 2, 3… without gaps or duplicates."""
    folder = resources.files(__package__ or "bot.storage").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    check_sequence(found)
    return found


def check_sequence(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(
            f"migrations must be numbered 1, 2, 3… without gaps or repeats; found {versions}"
        )


async def open_database(path: Path) -> aiosqlite.Connection:
    """Open (creating if needed) the database at `path`, in autocommit mode: every write is its own
    statement or goes through `transaction()`, so nothing sits uncommitted by accident."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        async with conn.execute("PRAGMA journal_mode=WAL") as cursor:
            row = await cursor.fetchone()
        if row is None or str(row[0]).lower() != "wal":
            raise StorageError(f"could not switch {path} to WAL mode (got {row[0] if row else None!r})")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash of the bot loses nothing
    except BaseException:
        await conn.close()
        raise
    return conn


async def user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def migrate(conn: aiosqlite.Connection, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply every migration newer than the database's `user_version`, each in its own transaction that
    also bumps the version, so a failure leaves the database at the last complete step. Returns the names
    of the migrations applied (none when already up to date)."""
    migrations = load_migrations() if migrations is None else migrations
    check_sequence(migrations)
    applied: list[str] = []
    async with connection_lock(conn):
        current = await user_version(conn)
        if current > len(migrations):
            raise DatabaseTooNew(
                f"the database is at schema version {current}, but this version of the bot only knows "
                f"up to {len(migrations)}: upgrade the bot, or restore a backup made for this version"
            )
        for migration in migrations[current:]:
            await _apply(conn, migration)
            log.info("database migrated to version %d (%s)", migration.version, migration.name)
            applied.append(migration.name)
    return applied


async def _apply(conn: aiosqlite.Connection, migration: Migration) -> None:
    # executescript() commits any open transaction first, so the script carries its own BEGIN/COMMIT;
    # PRAGMA user_version is written inside it and rolls back with it.
    script = f"BEGIN IMMEDIATE;\n{migration.sql}\n;\nPRAGMA user_version = {migration.version};\nCOMMIT;"
    try:
        await conn.executescript(script)
    except Exception as exc:
        await conn.rollback()
        raise MigrationError(f"migration {migration.name} failed and was rolled back: {exc}") from exc


_locks: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


def connection_lock(conn: aiosqlite.Connection) -> asyncio.Lock:
    """One lock per connection, shared by every repository on it. Without it a statement from one coroutine
    could run inside another's open transaction, and be committed or rolled back with it."""
    lock = _locks.get(conn)
    if lock is None:
        lock = _locks[conn] = asyncio.Lock()
    return lock


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """Hold the connection's lock and run the block as one transaction: committed when it ends,
    rolled back if it raises (or is cancelled)."""
    # aiosqlite queues each call before awaiting it, so even a cancelled await leaves the statement in
    # order ahead of the rollback queued here; the lock is released only after both are queued.
    async with connection_lock(conn):
        try:
            await conn.execute("BEGIN IMMEDIATE")
            yield conn
            await conn.commit()
        except BaseException:
            await conn.rollback()  # a no-op when no transaction is open (BEGIN failed, COMMIT done)
            raise


class Database:
    """`async with Database(path) as conn:` opens the database, brings its schema up to date and closes it
    at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None

    async def __aenter__(self) -> aiosqlite.Connection:
        conn = await open_database(self.path)
        try:
            await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
