"""Usage counted from the stored jobs, and servers' settings stored as `GuildSettings`."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from bot.engine.errors import Failure, FailureReason
from bot.engine.models import JobStatus
from bot.engine.options import GenerationOptions
from bot.quotas import GuildSettings, Usage
from bot.storage.guild_settings import GuildSettingsRepository
from bot.storage.jobs import JobRepository
from bot.storage.usage import UsageRepository
from tests.storage.builders import T0, image, job_started, request

TODAY = T0 - T0 % 86400  # 00:00 UTC of T0's day
ULTRA = GenerationOptions(model="ultra")


@pytest.fixture
def usage(conn: aiosqlite.Connection) -> UsageRepository:
    return UsageRepository(conn)


async def create(repo: JobRepository, job_id: str, n: int, *, at: float = T0, **kwargs: object) -> None:
    started = job_started(job_id, request(*(f"p{i}" for i in range(n)), **kwargs), wall_time=at)  # type: ignore[arg-type]
    await repo.create_job(started.job_id, started.request, started.generations, started.wall_time)


@pytest.fixture
async def history(repo: JobRepository, tmp_path: Path) -> None:
    """u1 in guild 10: a 3-prompt core job today (1 made, 1 failed, 1 cancelled) and a 2-prompt ultra job
    still queued; u1 in DMs: 1 image yesterday; u2 in guild 10: 2 running core prompts today; u2 in
    guild 11: 1 queued."""
    await create(repo, "u1-core", 3, user="u1", guild=10, at=T0)
    await repo.mark_generation_succeeded("u1-core", 0, image(tmp_path, "u1-core", 0))
    await repo.mark_generation_failed("u1-core", 1, Failure.of(FailureReason.TIMED_OUT))
    await repo.mark_generation_cancelled("u1-core", 2)
    await repo.finish_job("u1-core", JobStatus.PARTIAL)
    await create(repo, "u1-ultra", 2, user="u1", guild=10, at=T0 + 1, options=ULTRA)
    await create(repo, "u1-old", 1, user="u1", guild=None, at=TODAY - 1)
    await repo.mark_generation_succeeded("u1-old", 0, image(tmp_path, "u1-old", 0))
    await repo.finish_job("u1-old", JobStatus.SUCCEEDED)
    await create(repo, "u2-core", 2, user="u2", guild=10, at=T0 + 2)
    await repo.mark_generation_started("u2-core", 0)
    await repo.mark_generation_started("u2-core", 1)
    await create(repo, "u2-other", 1, user="u2", guild=11, at=T0 + 3)


@pytest.mark.parametrize(
    ("user", "guild", "since", "expected"),
    [
        # Made or still to be made, never failed or cancelled: 1 core image (3) + 2 queued ultra (16).
        ("u1", 10, TODAY, Usage(1, 3, 19.0, 5, 25.0)),
        ("u1", None, TODAY, Usage(1, 3, 19.0, 0, 0.0)),
        ("u1", 11, TODAY, Usage(1, 3, 19.0, 1, 3.0)),
        ("u1", None, TODAY - 86400, Usage(1, 4, 22.0, 0, 0.0)),  # yesterday's DM image too
        ("u2", 10, TODAY, Usage(2, 3, 9.0, 5, 25.0)),
        ("nobody", 12, TODAY, Usage()),
        ("u1", 10, T0 + 10, Usage(1, 0, 0.0, 0, 0.0)),
    ],
)
@pytest.mark.usefixtures("history")
async def test_usage_counts_what_was_asked_for_and_not_refused(
    usage: UsageRepository, user: str, guild: int | None, since: float, expected: Usage
) -> None:
    assert await usage.usage(user, guild, since) == expected


@pytest.mark.usefixtures("history")
async def test_usage_finds_the_stored_job_ids(usage: UsageRepository) -> None:
    async def existing(ids: list[str]) -> set[str]:
        _, found = await usage.usage_and_existing("u1", None, 0.0, ids)
        return found

    assert await existing(["u1-core", "nope", "u2-other"]) == {"u1-core", "u2-other"}
    assert await existing([]) == set()


@pytest.mark.usefixtures("history")
async def test_stored_counts_a_users_jobs_and_images(usage: UsageRepository) -> None:
    assert await usage.stored("u1") == (3, 2)
    assert await usage.stored("u2") == (2, 0)
    assert await usage.stored("nobody") == (0, 0)


async def test_the_daily_queries_use_the_indexes(conn: aiosqlite.Connection) -> None:
    from bot.storage.usage import _TODAY

    for column in ("requester_id", "guild_id"):
        plan = await conn.execute_fetchall(
            "EXPLAIN QUERY PLAN " + _TODAY.format(column=column), ("x" if column == "requester_id" else 1, 0)
        )
        text = " ".join(str(row[3]) for row in plan)
        assert "USING INDEX jobs_by_" in text and "SCAN" not in text, text


async def test_guild_settings_are_stored_per_guild(repo: JobRepository) -> None:
    guilds = GuildSettingsRepository(repo)
    assert await guilds.get(10) == GuildSettings()
    chosen = GuildSettings(allowed_channel_ids=(5, 6), max_prompts=3, default_model="ultra", spoilers=True)
    await guilds.put(10, chosen)
    await guilds.put(11, GuildSettings(guild_daily_credit_budget=40))
    assert await guilds.get(10) == chosen
    assert await guilds.get(11) == GuildSettings(guild_daily_credit_budget=40.0)
    await guilds.put(10, GuildSettings())
    assert await guilds.get(10) == GuildSettings()
    assert await repo.get_guild_settings(10) == {}, "back to the defaults: nothing kept"


async def test_a_job_is_never_counted_both_as_stored_and_as_not_yet_stored(tmp_path: Path) -> None:
    """A reserved job, once written, counts once. (The interleaved case — written between two separate
    reads, which refused users under their cap — is what tests/e2e/test_load.py caught; one consistent
    reading now makes it impossible by construction.)"""
    from bot.config import Settings
    from bot.engine.events import PlannedGeneration
    from bot.engine.models import JobRequest, Place, Requester
    from bot.engine.options import GenerationOptions
    from bot.quotas import QuotaGate
    from bot.storage.database import Database
    from bot.storage.guild_settings import GuildSettingsRepository
    from bot.storage.jobs import JobRepository

    async with Database(tmp_path / "q.sqlite3") as conn:
        jobs = JobRepository(conn)
        settings = Settings.from_env(
            {"IMAGE_PROVIDER": "demo", "USER_MAX_ACTIVE_JOBS": "2"}, need_discord=False
        )
        quotas = QuotaGate(UsageRepository(conn), GuildSettingsRepository(jobs), settings)
        assert (await quotas.admit("job00001", "u1", None, (None,), 1, "core")).allowed
        request = JobRequest(Requester("u1", "u"), Place(), ("p",), GenerationOptions())
        await jobs.create_job("job00001", request, [PlannedGeneration(0, "p", 1)], 0.0)  # written meanwhile
        assert (await quotas.admit("job00002", "u1", None, (None,), 1, "core")).allowed, "1 running, cap 2"
        assert not (await quotas.admit("job00003", "u1", None, (None,), 1, "core")).allowed
