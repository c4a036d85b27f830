"""`undelivered_jobs`: finished jobs whose images were not all posted, for crash recovery to finish."""

from pathlib import Path

from bot.engine.models import JobStatus
from bot.storage.jobs import JobRepository
from tests.storage.builders import T0
from tests.storage.test_jobs import create, succeed


async def test_only_recent_finished_jobs_with_an_unposted_image_are_listed(
    repo: JobRepository, tmp_path: Path
) -> None:
    await create(repo, "posted", "a", at=T0)
    await succeed(repo, tmp_path, "posted", 0)
    await repo.mark_posted("posted", 0, 111)
    await repo.finish_job("posted", JobStatus.SUCCEEDED)

    await create(repo, "unposted", "a", "b", at=T0 + 1)
    await succeed(repo, tmp_path, "unposted", 0)
    await succeed(repo, tmp_path, "unposted", 1)
    await repo.mark_posted("unposted", 0, 222)
    await repo.finish_job("unposted", JobStatus.SUCCEEDED)

    await create(repo, "running", "a", at=T0 + 2)  # unfinished jobs are recovered another way
    await succeed(repo, tmp_path, "running", 0)

    await create(repo, "too-old", "a", at=T0 - 3600)
    await succeed(repo, tmp_path, "too-old", 0)
    await repo.finish_job("too-old", JobStatus.SUCCEEDED)

    await create(repo, "no-image", "a", at=T0 + 3)
    await repo.finish_job("no-image", JobStatus.FAILED)

    found = await repo.undelivered_jobs(since=T0 - 60)
    assert [job.id for job in found] == ["unposted"]
    assert [g.posted_message_id for g in found[0].generations] == [222, None]
