"""What users and servers used today, counted from the jobs and generations tables, for quotas and /usage."""

from __future__ import annotations

import json
from collections.abc import Collection

import aiosqlite

from bot.quotas import Usage
from bot.storage.database import connection_lock

# A generation counts against a quota once it is asked for, unless it failed or was cancelled (neither is
# charged): counting queued and running ones keeps jobs that run side by side from overshooting together.
# Its credits are its job's estimate shared evenly between the job's prompts.
_TODAY = """SELECT count(*) AS images, total(j.estimated_credits / j.prompt_count) AS credits
    FROM jobs AS j JOIN generations AS g ON g.job_id = j.id
    WHERE j.{column} = ? AND j.created_at >= ? AND g.status IN ('queued', 'running', 'succeeded')"""


class UsageRepository:
    """All SQL about usage. Quotas count jobs by the day they were asked for (created_at)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def usage(self, requester_id: str, guild_id: int | None, since: float) -> Usage:
        """A user's images and credits since `since` everywhere, and, in a server, the server's."""
        usage, _ = await self.usage_and_existing(requester_id, guild_id, since, ())
        return usage

    async def usage_and_existing(
        self, requester_id: str, guild_id: int | None, since: float, job_ids: Collection[str]
    ) -> tuple[Usage, set[str]]:
        """`usage`, and which of `job_ids` are written, read together: every write takes the same lock, so
        no job can be written in between and be counted both as stored and as not yet stored."""
        async with connection_lock(self._conn):
            existing = await self._existing(job_ids) if job_ids else set()
            user_images, user_credits = await self._today("requester_id", requester_id, since)
            guild_images, guild_credits = (
                (0, 0.0) if guild_id is None else await self._today("guild_id", guild_id, since)
            )
            async with self._conn.execute(
                "SELECT count(*) FROM jobs WHERE requester_id = ? AND status = 'running'", (requester_id,)
            ) as cursor:
                row = await cursor.fetchone()
        active = 0 if row is None else int(row[0])
        return Usage(active, user_images, user_credits, guild_images, guild_credits), existing

    async def stored(self, requester_id: str) -> tuple[int, int]:
        """How many jobs of a user are kept, and how many images they made: what /forget-me deletes."""
        async with connection_lock(self._conn):
            rows = list(
                await self._conn.execute_fetchall(
                    """SELECT count(DISTINCT j.id), count(g.image_path)
                    FROM jobs AS j LEFT JOIN generations AS g ON g.job_id = j.id
                    WHERE j.requester_id = ?""",
                    (requester_id,),
                )
            )
        return int(rows[0][0]), int(rows[0][1])

    async def _existing(self, job_ids: Collection[str]) -> set[str]:
        rows = await self._conn.execute_fetchall(
            "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(job_ids)),),
        )
        return {str(row[0]) for row in rows}

    async def _today(self, column: str, value: str | int, since: float) -> tuple[int, float]:
        # `column` is one of two literals above, never user input; each has an index with created_at.
        async with self._conn.execute(_TODAY.format(column=column), (value, since)) as cursor:
            row = await cursor.fetchone()
        return (0, 0.0) if row is None else (int(row["images"]), float(row["credits"]))
