import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from bot.engine.errors import Failure, FailureReason
from bot.engine.events import (
    GenerationCancelled,
    GenerationFailed,
    GenerationStarted,
    GenerationSucceeded,
    JobFinished,
)
from bot.engine.models import GenerationStatus, JobStatus, Place, Requester
from bot.engine.options import GenerationOptions
from bot.storage.database import Database
from bot.storage.jobs import JobRepository
from bot.storage.recorder import JobRecorder
from tests.storage.builders import T0, FakeClock, image, job_started, request


async def test_a_job_round_trips_through_the_recorder(
    recorder: JobRecorder, repo: JobRepository, clock: FakeClock, tmp_path: Path
) -> None:
    options = GenerationOptions("ultra", "16:9", "blurry", "anime", None)
    req = request("a castle", "a dragon", "a moat", options=options)
    failure = Failure(FailureReason.MODERATION, "blocked by content moderation", "403 from API")
    picture = image(tmp_path, "abcd2345", 0)

    await recorder(job_started("abcd2345", req, wall_time=T0))
    for index in range(3):
        clock.advance(1)
        await recorder(GenerationStarted("abcd2345", index, at=6.0))
    clock.advance(10)
    await recorder(GenerationSucceeded("abcd2345", 0, picture, at=16.0))
    clock.advance(1)
    await recorder(GenerationFailed("abcd2345", 1, failure, at=17.0))
    clock.advance(1)
    await recorder(GenerationCancelled("abcd2345", 2, at=18.0))
    clock.advance(1)
    await recorder(JobFinished("abcd2345", JobStatus.PARTIAL, at=19.0))

    job = await repo.get_job("abcd2345")
    assert job is not None
    assert (job.id, job.requester, job.place, job.options) == (
        "abcd2345",
        Requester("u1", "name-u1"),
        Place(10, 20),
        options,
    )
    assert (job.status, job.prompt_count, job.estimated_credits) == (JobStatus.PARTIAL, 3, 24)
    assert (job.created_at, job.started_at, job.finished_at) == (T0, T0 + 1, T0 + 16)
    assert job.prompts == ("a castle", "a dragon", "a moat")
    assert job.request == req

    done, failed, cancelled = job.generations
    assert (done.status, done.image, done.seed, done.failure) == (
        GenerationStatus.SUCCEEDED,
        picture,
        4242,
        None,
    )
    assert (done.queued_at, done.started_at, done.finished_at, done.attempts) == (T0, T0 + 1, T0 + 13, 1)
    assert (failed.status, failed.failure, failed.image, failed.seed) == (
        GenerationStatus.FAILED,
        failure,
        None,
        101,
    )
    assert failed.finished_at == T0 + 14
    assert (cancelled.status, cancelled.started_at, cancelled.finished_at) == (
        GenerationStatus.CANCELLED,
        T0 + 3,
        T0 + 15,
    )


async def test_a_generation_cancelled_while_queued_never_started(
    recorder: JobRecorder, repo: JobRepository
) -> None:
    await recorder(job_started("q", request("p")))
    await recorder(GenerationCancelled("q", 0, at=1.0))
    await recorder(JobFinished("q", JobStatus.CANCELLED, at=1.0))
    job = await repo.get_job("q")
    assert job is not None and job.status is JobStatus.CANCELLED and job.started_at is None
    assert (job.generations[0].status, job.generations[0].started_at, job.generations[0].attempts) == (
        GenerationStatus.CANCELLED,
        None,
        0,
    )


async def test_recorded_events_are_durable_at_once(recorder: JobRecorder, tmp_path: Path) -> None:
    """Crash recovery reads what another connection (a restarted bot) sees, with nothing committed later."""
    await recorder(job_started("d", request("p")))
    await recorder(GenerationStarted("d", 0, at=1.0))
    async with Database(tmp_path / "data" / "bot.sqlite3") as other:
        job = await JobRepository(other).get_job("d")
    assert job is not None and job.generations[0].status is GenerationStatus.RUNNING


async def test_a_job_recorded_twice_is_an_error_for_the_runner_to_log(recorder: JobRecorder) -> None:
    await recorder(job_started("twice", request("p")))
    with pytest.raises(sqlite3.IntegrityError):
        await recorder(job_started("twice", request("p")))


async def test_many_events_recorded_at_once_all_land(
    recorder: JobRecorder, repo: JobRepository, tmp_path: Path
) -> None:
    job_ids = [f"job{n:05d}" for n in range(25)]
    await asyncio.gather(*(recorder(job_started(j, request("a", "b", "c", user=j))) for j in job_ids))
    await asyncio.gather(*(recorder(GenerationStarted(j, i, at=1.0)) for j in job_ids for i in range(3)))
    outcomes = [
        recorder(GenerationSucceeded(j, i, image(tmp_path, j, i), at=2.0)) for j in job_ids for i in range(3)
    ]
    reads = [repo.get_job(j) for j in job_ids]
    await asyncio.gather(*outcomes, *reads)
    await asyncio.gather(*(recorder(JobFinished(j, JobStatus.SUCCEEDED, at=3.0)) for j in job_ids))

    jobs = await asyncio.gather(*(repo.get_job(j) for j in job_ids))
    assert all(job is not None and job.status is JobStatus.SUCCEEDED for job in jobs)
    assert all(g.status is GenerationStatus.SUCCEEDED for job in jobs if job for g in job.generations)
    assert await repo.unfinished_jobs() == []


class GatedRepository(JobRepository):
    """Holds `mark_generation_started` open until released, so a test can cancel the publisher mid-write."""

    def __init__(self, repo: JobRepository, *, fail: bool = False) -> None:
        super().__init__(repo._conn, repo._clock)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = fail

    async def mark_generation_started(self, job_id: str, index: int) -> bool:
        self.entered.set()
        await self.release.wait()
        if self.fail:
            raise RuntimeError("disk on fire")
        return await super().mark_generation_started(job_id, index)


async def cancel_mid_write(recorder: JobRecorder, gated: GatedRepository) -> None:
    publishing = asyncio.create_task(recorder(GenerationStarted("c", 0, at=1.0)))
    await gated.entered.wait()
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    gated.release.set()
    await recorder.drain()


async def test_a_write_survives_its_publisher_being_cancelled(repo: JobRepository) -> None:
    gated = GatedRepository(repo)
    recorder = JobRecorder(gated)
    await recorder(job_started("c", request("p")))
    await cancel_mid_write(recorder, gated)
    job = await repo.get_job("c")
    assert job is not None and job.generations[0].status is GenerationStatus.RUNNING


async def test_a_failed_write_nobody_awaits_is_logged(
    repo: JobRepository, caplog: pytest.LogCaptureFixture
) -> None:
    gated = GatedRepository(repo, fail=True)
    recorder = JobRecorder(gated)
    await recorder(job_started("c", request("p")))
    with caplog.at_level(logging.ERROR, logger="bot.storage.recorder"):
        await cancel_mid_write(recorder, gated)
    assert "record-c-GenerationStarted" in caplog.text
    assert "disk on fire" in caplog.text
