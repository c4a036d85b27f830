"""Records the engine's events in the database, as they happen: subscribe a `JobRecorder` to the runner."""

from __future__ import annotations

import asyncio
import logging
from typing import assert_never

from bot.engine.events import (
    Event,
    GenerationCancelled,
    GenerationFailed,
    GenerationStarted,
    GenerationSucceeded,
    JobFinished,
    JobResumed,
    JobStarted,
)
from bot.storage.jobs import JobRepository

log = logging.getLogger(__name__)


class JobRecorder:
    """`runner.subscribe(JobRecorder(repo))`. Wall-clock times come from the repository's clock."""

    def __init__(self, repo: JobRepository) -> None:
        self.repo = repo
        self._pending: set[asyncio.Task[None]] = set()

    async def __call__(self, event: Event) -> None:
        # The runner cancels a generation's task while it may be awaiting us; the write still lands, and in
        # order (the connection lock is first come, first served), instead of being lost half-way.
        task = asyncio.create_task(self.record(event), name=f"record-{event.job_id}-{type(event).__name__}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(_log_failure)
            raise

    async def drain(self) -> None:
        """Wait for writes whose publisher was cancelled; call before closing the database."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def record(self, event: Event) -> None:
        repo = self.repo
        match event:
            case JobStarted():
                await repo.create_job(event.job_id, event.request, event.generations, event.wall_time)
            case GenerationStarted():
                await repo.mark_generation_started(event.job_id, event.index)
            case GenerationSucceeded():
                await repo.mark_generation_succeeded(event.job_id, event.index, event.image)
            case GenerationFailed():
                await repo.mark_generation_failed(event.job_id, event.index, event.failure)
            case GenerationCancelled():
                await repo.mark_generation_cancelled(event.job_id, event.index)
            case JobFinished():
                await repo.finish_job(event.job_id, event.status)
            case JobResumed():
                pass  # the job's rows are already there, as the earlier run left them
            case _:
                assert_never(event)


def _log_failure(task: asyncio.Task[None]) -> None:
    """Nobody awaits a write whose publisher was cancelled: its error would vanish without this."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("recording %s failed", task.get_name(), exc_info=exc)
