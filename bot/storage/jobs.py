"""Jobs and their generations as rows: every state change is committed as it happens, so a restarted bot
knows what was running, what was made and what is still to be posted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from bot.engine.errors import Failure, FailureReason
from bot.engine.events import PlannedGeneration
from bot.engine.models import GenerationStatus, ImageFile, JobRequest, JobStatus, Place, Requester
from bot.engine.options import MODELS, GenerationOptions
from bot.storage.database import connection_lock, transaction

Clock = Callable[[], float]

_JOB_COLUMNS = """id, requester_id, requester_name, guild_id, channel_id, prompt_count, model, aspect_ratio,
    negative_prompt, style, seed, status, created_at, started_at, finished_at, estimated_credits,
    interaction_token, interaction_expires_at, progress_channel_id, progress_message_id"""
_GENERATION_COLUMNS = """job_id, idx, prompt, seed, status, failure_reason, failure_message, failure_detail,
    image_path, image_format, width, height, size_bytes, queued_at, started_at, finished_at,
    posted_message_id, posted_at, attempts"""
# A generation that has not ended yet: only these may change status (later events change nothing, as in
# the engine's own progress fold).
_OPEN = "status IN ('queued', 'running')"


@dataclass(frozen=True)
class Delivery:
    """Where and how the job is being answered on Discord."""

    interaction_token: str | None = field(default=None, repr=False)  # a secret while it lives
    interaction_expires_at: float | None = None
    progress_channel_id: int | None = None
    progress_message_id: int | None = None


@dataclass(frozen=True)
class GenerationRecord:
    job_id: str
    index: int
    prompt: str
    seed: int  # planned; the image's own once it succeeded
    status: GenerationStatus
    queued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0  # times started
    failure: Failure | None = None
    image: ImageFile | None = None
    posted_message_id: int | None = None
    posted_at: float | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str
    requester: Requester
    place: Place
    options: GenerationOptions  # as asked: seed None means random per prompt
    prompt_count: int
    status: JobStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    estimated_credits: float | None
    delivery: Delivery
    generations: tuple[GenerationRecord, ...] = ()

    @property
    def prompts(self) -> tuple[str, ...]:
        return tuple(g.prompt for g in self.generations)

    @property
    def request(self) -> JobRequest:
        return JobRequest(self.requester, self.place, self.prompts, self.options)


def estimate_credits(
    model: str, prompt_count: int, prices: Mapping[str, float] | None = None
) -> float | None:
    """What a job costs if every prompt succeeds (failed generations are not charged)."""
    if prices is None:
        prices = {m.name: m.credits for m in MODELS.values()}
    price = prices.get(model)
    return None if price is None else price * prompt_count


class JobRepository:
    """All SQL about jobs (and guild settings). `clock` stamps every change with wall-clock time."""

    def __init__(
        self, conn: aiosqlite.Connection, clock: Clock = time.time, prices: Mapping[str, float] | None = None
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._prices = prices  # credits per image by model; None: Stability's list prices

    # --- writes -------------------------------------------------------------------------------------

    async def create_job(
        self, job_id: str, request: JobRequest, planned: Sequence[PlannedGeneration], created_at: float
    ) -> None:
        options = request.options
        async with transaction(self._conn) as conn:
            await conn.execute(
                """INSERT INTO jobs (id, requester_id, requester_name, guild_id, channel_id, prompt_count,
                    model, aspect_ratio, negative_prompt, style, seed, status, created_at, estimated_credits)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    job_id,
                    request.requester.id,
                    request.requester.name,
                    request.place.guild_id,
                    request.place.channel_id,
                    len(planned),
                    options.model,
                    options.aspect_ratio,
                    options.negative_prompt,
                    options.style,
                    options.seed,
                    JobStatus.RUNNING,
                    created_at,
                    estimate_credits(options.model, len(planned), self._prices),
                ),
            )
            await conn.executemany(
                """INSERT INTO generations (job_id, idx, prompt, seed, status, queued_at)
                VALUES (?, ?, ?, ?, ?, ?)""",
                [(job_id, g.index, g.prompt, g.seed, GenerationStatus.QUEUED, created_at) for g in planned],
            )

    async def mark_generation_started(self, job_id: str, index: int) -> bool:
        now = self._clock()
        async with transaction(self._conn) as conn:
            async with conn.execute(
                f"""UPDATE generations SET status = ?, started_at = ?, attempts = attempts + 1
                WHERE job_id = ? AND idx = ? AND {_OPEN}""",
                (GenerationStatus.RUNNING, now, job_id, index),
            ) as cursor:
                changed = cursor.rowcount > 0
            await conn.execute(
                "UPDATE jobs SET started_at = ? WHERE id = ? AND started_at IS NULL", (now, job_id)
            )
        return changed

    async def mark_generation_succeeded(self, job_id: str, index: int, image: ImageFile) -> bool:
        return await self._change(
            f"""UPDATE generations SET status = ?, finished_at = ?, seed = ?, image_path = ?,
                image_format = ?, width = ?, height = ?, size_bytes = ?
            WHERE job_id = ? AND idx = ? AND {_OPEN}""",
            (
                GenerationStatus.SUCCEEDED,
                self._clock(),
                image.seed,
                str(image.path),
                image.format,
                image.width,
                image.height,
                image.size_bytes,
                job_id,
                index,
            ),
        )

    async def mark_generation_failed(self, job_id: str, index: int, failure: Failure) -> bool:
        return await self._change(
            f"""UPDATE generations SET status = ?, finished_at = ?, failure_reason = ?, failure_message = ?,
                failure_detail = ?
            WHERE job_id = ? AND idx = ? AND {_OPEN}""",
            (
                GenerationStatus.FAILED,
                self._clock(),
                failure.reason,
                failure.message,
                failure.detail,
                job_id,
                index,
            ),
        )

    async def mark_generation_cancelled(self, job_id: str, index: int) -> bool:
        return await self._change(
            f"UPDATE generations SET status = ?, finished_at = ? WHERE job_id = ? AND idx = ? AND {_OPEN}",
            (GenerationStatus.CANCELLED, self._clock(), job_id, index),
        )

    async def finish_job(self, job_id: str, status: JobStatus) -> bool:
        return await self._change(
            "UPDATE jobs SET status = ?, finished_at = ? WHERE id = ? AND finished_at IS NULL",
            (status, self._clock(), job_id),
        )

    async def mark_posted(self, job_id: str, index: int, message_id: int) -> bool:
        return await self._change(
            "UPDATE generations SET posted_message_id = ?, posted_at = ? WHERE job_id = ? AND idx = ?",
            (message_id, self._clock(), job_id, index),
        )

    async def set_delivery(
        self,
        job_id: str,
        interaction_token: str | None,
        expires_at: float | None,
        progress_channel_id: int | None,
        progress_message_id: int | None,
    ) -> bool:
        return await self._change(
            """UPDATE jobs SET interaction_token = ?, interaction_expires_at = ?, progress_channel_id = ?,
                progress_message_id = ?
            WHERE id = ?""",
            (interaction_token, expires_at, progress_channel_id, progress_message_id, job_id),
        )

    async def delete_requester(self, requester_id: str) -> list[str]:
        """Forget a user: their jobs and generations go; returns the job ids whose image folders the caller
        deletes."""
        async with transaction(self._conn) as conn:
            rows = await conn.execute_fetchall(
                "SELECT id FROM jobs WHERE requester_id = ? ORDER BY created_at", (requester_id,)
            )
            await conn.execute("DELETE FROM jobs WHERE requester_id = ?", (requester_id,))
        return [str(row["id"]) for row in rows]

    async def put_guild_settings(self, guild_id: int, settings: Mapping[str, Any]) -> None:
        await self._change(
            """INSERT INTO guild_settings (guild_id, settings, updated_at) VALUES (?, ?, ?)
            ON CONFLICT (guild_id) DO UPDATE
            SET settings = excluded.settings, updated_at = excluded.updated_at""",
            (guild_id, json.dumps(dict(settings), sort_keys=True), self._clock()),
        )

    async def _change(self, sql: str, params: Sequence[object]) -> bool:
        """One statement, committed on its own (the connection is in autocommit mode)."""
        async with connection_lock(self._conn), self._conn.execute(sql, params) as cursor:
            return cursor.rowcount > 0

    # --- reads --------------------------------------------------------------------------------------

    async def get_job(self, job_id: str) -> JobRecord | None:
        jobs = await self._jobs_where("id = ?", (job_id,))
        return jobs[0] if jobs else None

    async def recent_jobs(self, requester_id: str, limit: int = 10) -> list[JobRecord]:
        """A user's jobs, newest first."""
        return await self._jobs_where(
            "requester_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?", (requester_id, limit)
        )

    async def unfinished_jobs(self) -> list[JobRecord]:
        """Jobs that never finished, oldest first: after a crash, these were running when the bot stopped."""
        return await self._jobs_where("status = ? ORDER BY created_at, rowid", (JobStatus.RUNNING,))

    async def undelivered_jobs(self, since: float) -> list[JobRecord]:
        """Finished jobs created since `since` with an image made but not posted, oldest first: the bot
        stopped between the last image and its upload, or posting it failed."""
        return await self._jobs_where(
            """status != ? AND created_at >= ? AND id IN (
                SELECT job_id FROM generations WHERE status = ? AND posted_message_id IS NULL
            ) ORDER BY created_at, rowid""",
            (JobStatus.RUNNING, since, GenerationStatus.SUCCEEDED),
        )

    async def get_guild_settings(self, guild_id: int) -> dict[str, Any]:
        """A guild's settings, or {} when it has none."""
        async with connection_lock(self._conn):
            rows = list(
                await self._conn.execute_fetchall(
                    "SELECT settings FROM guild_settings WHERE guild_id = ?", (guild_id,)
                )
            )
        if not rows:
            return {}
        settings: dict[str, Any] = json.loads(rows[0]["settings"])
        return settings

    async def _jobs_where(self, condition: str, params: Sequence[object]) -> list[JobRecord]:
        async with connection_lock(self._conn):
            sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {condition}"
            job_rows = list(await self._conn.execute_fetchall(sql, params))
            if not job_rows:
                return []
            # json_each: any number of ids as one parameter.
            generation_rows = await self._conn.execute_fetchall(
                f"""SELECT {_GENERATION_COLUMNS} FROM generations
                WHERE job_id IN (SELECT value FROM json_each(?)) ORDER BY job_id, idx""",
                (json.dumps([row["id"] for row in job_rows]),),
            )
        by_job: dict[str, list[GenerationRecord]] = {}
        for row in generation_rows:
            by_job.setdefault(row["job_id"], []).append(_generation(row))
        return [_job(row, by_job.get(row["id"], ())) for row in job_rows]


def _job(row: aiosqlite.Row, generations: Iterable[GenerationRecord]) -> JobRecord:
    return JobRecord(
        id=row["id"],
        requester=Requester(row["requester_id"], row["requester_name"]),
        place=Place(row["guild_id"], row["channel_id"]),
        options=GenerationOptions(
            row["model"], row["aspect_ratio"], row["negative_prompt"], row["style"], row["seed"]
        ),
        prompt_count=row["prompt_count"],
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        estimated_credits=row["estimated_credits"],
        delivery=Delivery(
            row["interaction_token"],
            row["interaction_expires_at"],
            row["progress_channel_id"],
            row["progress_message_id"],
        ),
        generations=tuple(generations),
    )


def _generation(row: aiosqlite.Row) -> GenerationRecord:
    failure = None
    if row["failure_reason"] is not None:
        reason = FailureReason(row["failure_reason"])
        failure = Failure(reason, row["failure_message"], row["failure_detail"] or "")
    image = None
    if row["image_path"] is not None:
        image = ImageFile(
            Path(row["image_path"]),
            row["image_format"],
            row["width"],
            row["height"],
            row["size_bytes"],
            row["seed"],
        )
    return GenerationRecord(
        job_id=row["job_id"],
        index=row["idx"],
        prompt=row["prompt"],
        seed=row["seed"],
        status=GenerationStatus(row["status"]),
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=row["attempts"],
        failure=failure,
        image=image,
        posted_message_id=row["posted_message_id"],
        posted_at=row["posted_at"],
    )
