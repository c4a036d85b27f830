"""Crash recovery: at start-up, before new work is served, carry on with what the last run left undone.

For every unfinished job asked on Discord, oldest first:

- images made but never posted are posted (never generated again);
- if it was created within `resume_window`, its queued and interrupted generations run again with their
  recorded seeds (`JobRunner.resume`); otherwise they fail as INTERRUPTED and the job is finished;
- its progress message is brought up to date and, once nothing runs, ends with the summary.

Finished jobs created within the window that still have an unposted image (the bot stopped between the
last image and its upload) get those images posted and their summary shown again. Jobs without a channel
(the command line's) are left alone: the Discord bot has nowhere to answer them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from bot.engine.errors import Failure, FailureReason
from bot.engine.models import GenerationStatus
from bot.engine.progress import GenerationState, JobProgress, final_status
from bot.engine.runner import JobRunner, RunnerClosed
from bot.storage.jobs import JobRecord, JobRepository
from cogs.imagine.delivery import FinishedJob, JobSource

log = logging.getLogger(__name__)

# Hands a recovered job to the Discord side: it builds and tracks the job's delivery.
Deliver = Callable[[JobSource, JobRecord], object]


def progress_from_record(record: JobRecord, *, now: float, wall_now: float) -> JobProgress:
    """The engine's snapshot of a recorded job. Times move from the wall clock to the engine's monotonic
    clock; a generation that was running is queued again, as it will wait for a slot like any other."""
    offset = now - wall_now

    def clock(wall: float | None) -> float | None:
        return None if wall is None else wall + offset

    states = tuple(
        GenerationState(
            g.index,
            g.prompt,
            g.seed,
            GenerationStatus.QUEUED if g.status is GenerationStatus.RUNNING else g.status,
            None if g.status is GenerationStatus.RUNNING else clock(g.started_at),
            clock(g.finished_at),
            g.image,
            g.failure,
        )
        for g in record.generations
    )
    return JobProgress(
        record.id,
        record.request,
        states,
        record.created_at + offset,
        clock(record.finished_at),
        record.status,
    )


def unposted_indexes(record: JobRecord) -> list[int]:
    return [
        g.index
        for g in record.generations
        if g.status is GenerationStatus.SUCCEEDED and g.posted_message_id is None
    ]


class JobRecovery:
    def __init__(
        self,
        runner: JobRunner,
        jobs: JobRepository,
        deliver: Deliver,
        *,
        resume_window: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.runner = runner
        self.jobs = jobs
        self.deliver = deliver
        self.resume_window = resume_window
        self.clock = clock
        self.wall_clock = wall_clock

    async def run(self) -> int:
        """Recover every job there is to recover; returns how many."""
        wall_now = self.wall_clock()
        # Both lists first: the unfinished jobs finished below must not come back as undelivered ones.
        unfinished = [r for r in await self.jobs.unfinished_jobs() if self._on_discord(r)]
        undelivered = [
            r for r in await self.jobs.undelivered_jobs(wall_now - self.resume_window) if self._on_discord(r)
        ]
        for record in unfinished:
            await self._recover_unfinished(record, wall_now)
        for record in undelivered:
            log.info("job %s: posting %d image(s) left unposted", record.id, len(unposted_indexes(record)))
            progress = progress_from_record(record, now=self.clock(), wall_now=wall_now)
            self.deliver(FinishedJob(record.id, progress), record)
        if unfinished or undelivered:
            log.info("recovered %d unfinished and %d undelivered job(s)", len(unfinished), len(undelivered))
        return len(unfinished) + len(undelivered)

    @staticmethod
    def _on_discord(record: JobRecord) -> bool:
        if record.place.channel_id is None:
            log.debug("job %s: not asked on Discord; left as it is", record.id)
            return False
        return True

    async def _recover_unfinished(self, record: JobRecord, wall_now: float) -> None:
        progress = progress_from_record(record, now=self.clock(), wall_now=wall_now)
        left = [g.index for g in progress.generations if not g.status.is_terminal]
        age = wall_now - record.created_at
        if left and age <= self.resume_window:
            try:
                handle = self.runner.resume(progress)
            except RunnerClosed:
                log.info("job %s: not resumed, the bot is already shutting down", record.id)
                return
            log.info("job %s: resuming %d unfinished prompt(s) after a restart", record.id, len(left))
            self.deliver(handle, record)
            return
        if left:
            log.info(
                "job %s: %d prompt(s) interrupted %.0f min ago, past the resume window: reported as failed",
                record.id,
                len(left),
                age / 60,
            )
        failure = Failure.of(FailureReason.INTERRUPTED, f"unfinished at restart, {age:.0f}s after it began")
        now = self.clock()
        for index in left:
            await self.jobs.mark_generation_failed(record.id, index, failure)
        generations = tuple(
            replace(g, status=GenerationStatus.FAILED, finished_at=now, failure=failure)
            if g.index in left
            else g
            for g in progress.generations
        )
        status = final_status(generations)
        await self.jobs.finish_job(record.id, status)
        finished = replace(progress, generations=generations, finished_at=now, status=status)
        self.deliver(FinishedJob(record.id, finished), record)
