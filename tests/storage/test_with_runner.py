"""The recorder subscribed to the real runner: what the database holds matches what the engine did."""

import asyncio
from pathlib import Path

from bot.engine.errors import FailureReason
from bot.engine.models import GenerationStatus, JobStatus
from bot.engine.runner import JobRunner
from bot.providers.errors import ContentModerated
from bot.storage.images import ImageFiles
from bot.storage.jobs import JobRepository
from bot.storage.recorder import JobRecorder
from tests.fakes.providers import ScriptedProvider, raises, waits_for
from tests.storage.builders import request


def runner_with(provider: ScriptedProvider, tmp_path: Path, recorder: JobRecorder) -> JobRunner:
    runner = JobRunner(provider, ImageFiles(tmp_path / "images"), max_concurrent=4, timeout=5)
    runner.subscribe(recorder)
    return runner


async def test_a_finished_run_is_recorded(recorder: JobRecorder, repo: JobRepository, tmp_path: Path) -> None:
    provider = ScriptedProvider({"bad": raises(ContentModerated("flagged"))})
    runner = runner_with(provider, tmp_path, recorder)
    async with asyncio.timeout(5):
        progress = await runner.run(request("good", "bad"), job_id="run00001")

    job = await repo.get_job("run00001")
    assert job is not None
    assert job.status is progress.status is JobStatus.PARTIAL
    good, bad = job.generations
    assert good.status is GenerationStatus.SUCCEEDED and good.image is not None and good.image.path.exists()
    assert good.image == progress.generations[0].image
    assert bad.status is GenerationStatus.FAILED and bad.failure is not None
    assert bad.failure.reason is FailureReason.MODERATION
    assert (good.image is not None, good.posted_message_id) == (True, None), "made, not yet posted"


async def test_a_cancelled_run_leaves_nothing_unfinished(
    recorder: JobRecorder, repo: JobRepository, tmp_path: Path
) -> None:
    provider = ScriptedProvider({"slow": waits_for(asyncio.Event())})  # never released
    runner = runner_with(provider, tmp_path, recorder)
    handle = runner.submit(request("fast", "slow"), job_id="run00002")
    async with asyncio.timeout(5):
        await provider.wait_until(lambda p: "slow" in p.started)
        handle.cancel()
        await handle.wait()
        await recorder.drain()

    job = await repo.get_job("run00002")
    assert job is not None and job.status is JobStatus.CANCELLED
    assert job.generations[1].status is GenerationStatus.CANCELLED
    assert job.generations[1].started_at is not None
    assert await repo.unfinished_jobs() == []
