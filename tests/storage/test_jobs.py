from pathlib import Path

import aiosqlite
import pytest

from bot.engine.errors import Failure, FailureReason
from bot.engine.models import GenerationStatus, JobStatus
from bot.engine.options import GenerationOptions
from bot.storage.jobs import Delivery, JobRepository
from tests.storage.builders import T0, FakeClock, image, job_started, request


async def create(repo: JobRepository, job_id: str, *prompts: str, at: float = T0, **kwargs: object) -> None:
    started = job_started(job_id, request(*(prompts or ("p",)), **kwargs), wall_time=at)  # type: ignore[arg-type]
    await repo.create_job(started.job_id, started.request, started.generations, started.wall_time)


async def succeed(repo: JobRepository, tmp_path: Path, job_id: str, index: int) -> None:
    await repo.mark_generation_started(job_id, index)
    await repo.mark_generation_succeeded(job_id, index, image(tmp_path, job_id, index))


async def test_an_unknown_job_is_none(repo: JobRepository) -> None:
    assert await repo.get_job("nope0000") is None


async def test_a_new_job_is_running_with_queued_generations(repo: JobRepository) -> None:
    await create(repo, "new", "a", "b", options=GenerationOptions(seed=7))
    job = await repo.get_job("new")
    assert job is not None
    assert (job.status, job.started_at, job.finished_at, job.options.seed) == (
        JobStatus.RUNNING,
        None,
        None,
        7,
    )
    assert [(g.index, g.prompt, g.seed, g.status) for g in job.generations] == [
        (0, "a", 100, GenerationStatus.QUEUED),
        (1, "b", 101, GenerationStatus.QUEUED),
    ]


@pytest.mark.parametrize(
    ("model", "prompts", "credits"),
    [("core", 1, 3), ("ultra", 3, 24), ("sd3.5-large", 2, 13), ("no-such-model", 2, None)],
)
async def test_estimated_credits_are_prompts_times_price(
    repo: JobRepository, model: str, prompts: int, credits: float | None
) -> None:
    await create(repo, "cost", *"abcdef"[:prompts], options=GenerationOptions(model=model))
    job = await repo.get_job("cost")
    assert job is not None and job.estimated_credits == credits


async def test_events_after_a_generation_ended_change_nothing(repo: JobRepository, tmp_path: Path) -> None:
    await create(repo, "late")
    await succeed(repo, tmp_path, "late", 0)
    assert not await repo.mark_generation_failed("late", 0, Failure.of(FailureReason.TIMED_OUT))
    assert not await repo.mark_generation_cancelled("late", 0)
    assert not await repo.mark_generation_started("late", 0)
    assert await repo.finish_job("late", JobStatus.SUCCEEDED)
    assert not await repo.finish_job("late", JobStatus.FAILED)
    job = await repo.get_job("late")
    assert job is not None and job.status is JobStatus.SUCCEEDED
    assert (job.generations[0].status, job.generations[0].failure) == (GenerationStatus.SUCCEEDED, None)


async def test_a_restarted_generation_counts_its_attempts(repo: JobRepository) -> None:
    await create(repo, "again")
    await repo.mark_generation_started("again", 0)
    await repo.mark_generation_started("again", 0)
    job = await repo.get_job("again")
    assert job is not None and job.generations[0].attempts == 2


async def test_recent_jobs_are_a_users_newest_first(repo: JobRepository) -> None:
    for n, (job_id, user) in enumerate(
        [("j1", "u1"), ("j2", "u2"), ("j3", "u1"), ("j4", "u1"), ("j5", "u1")]
    ):
        await create(repo, job_id, at=T0 + n, user=user)
    await create(repo, "j6", at=T0 + 4, user="u1")  # same time as j5: the later insert counts as newer
    assert [j.id for j in await repo.recent_jobs("u1", limit=3)] == ["j6", "j5", "j4"]
    assert [j.id for j in await repo.recent_jobs("u1", limit=10)] == ["j6", "j5", "j4", "j3", "j1"]
    assert [j.id for j in await repo.recent_jobs("u2")] == ["j2"]
    assert await repo.recent_jobs("nobody") == []
    assert [g.prompt for g in (await repo.recent_jobs("u2"))[0].generations] == ["p"]


async def test_unfinished_jobs_are_those_still_running_oldest_first(repo: JobRepository) -> None:
    for n, job_id in enumerate(["old", "done", "new"]):
        await create(repo, job_id, at=T0 + n)
    await repo.finish_job("done", JobStatus.FAILED)
    unfinished = await repo.unfinished_jobs()
    assert [j.id for j in unfinished] == ["old", "new"]
    assert all(len(j.generations) == 1 for j in unfinished)


async def unposted(repo: JobRepository, job_id: str) -> list[int]:
    """What crash recovery posts: images made but not recorded as posted."""
    job = await repo.get_job(job_id)
    assert job is not None
    return [g.index for g in job.generations if g.image is not None and g.posted_message_id is None]


async def test_unposted_images_until_posted(repo: JobRepository, clock: FakeClock, tmp_path: Path) -> None:
    await create(repo, "post", "a", "b", "c")
    await succeed(repo, tmp_path, "post", 0)
    await succeed(repo, tmp_path, "post", 2)
    await repo.mark_generation_failed("post", 1, Failure.of(FailureReason.FILTERED))
    assert await unposted(repo, "post") == [0, 2]

    clock.advance(5)
    assert await repo.mark_posted("post", 0, 999_000_000_000_000_001)
    assert await unposted(repo, "post") == [2]
    job = await repo.get_job("post")
    assert job is not None
    assert (job.generations[0].posted_message_id, job.generations[0].posted_at) == (
        999_000_000_000_000_001,
        T0 + 5,
    )


async def test_delivery_round_trips_and_hides_the_token(repo: JobRepository) -> None:
    await create(repo, "deliv")
    job = await repo.get_job("deliv")
    assert job is not None and job.delivery == Delivery()
    assert await repo.set_delivery("deliv", "secret-token", T0 + 900, 1_234_567_890_123_456_789, 42)
    job = await repo.get_job("deliv")
    assert job is not None
    assert job.delivery == Delivery("secret-token", T0 + 900, 1_234_567_890_123_456_789, 42)
    assert "secret-token" not in repr(job)
    assert not await repo.set_delivery("missing", None, None, None, None)


async def test_deleting_a_requester_removes_their_jobs_and_generations(
    repo: JobRepository, conn: aiosqlite.Connection
) -> None:
    await create(repo, "mine1", "a", "b", user="u1", at=T0)
    await create(repo, "theirs", "a", user="u2", at=T0 + 1)
    await create(repo, "mine2", "a", user="u1", at=T0 + 2)

    assert await repo.delete_requester("u1") == ["mine1", "mine2"]
    assert await repo.get_job("mine1") is None and await repo.recent_jobs("u1") == []
    rows = await conn.execute_fetchall("SELECT DISTINCT job_id FROM generations")
    assert [row[0] for row in rows] == ["theirs"]
    assert await repo.delete_requester("u1") == []


async def test_guild_settings_round_trip(
    repo: JobRepository, conn: aiosqlite.Connection, clock: FakeClock
) -> None:
    assert await repo.get_guild_settings(10) == {}
    await repo.put_guild_settings(10, {"daily_limit": 50, "models": ["core", "ultra"], "nsfw": False})
    clock.advance(60)
    await repo.put_guild_settings(10, {"daily_limit": 20})
    await repo.put_guild_settings(11, {"daily_limit": 99})
    assert await repo.get_guild_settings(10) == {"daily_limit": 20}
    assert await repo.get_guild_settings(11) == {"daily_limit": 99}
    rows = list(await conn.execute_fetchall("SELECT updated_at FROM guild_settings WHERE guild_id = 10"))
    assert rows[0][0] == T0 + 60
