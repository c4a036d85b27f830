"""Running jobs: every generation of every job concurrently, under one global limit and a per-generation
timeout. A failure or timeout never touches its siblings; cancelling a job stops its queued and running
generations cleanly."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.engine.errors import Failure, FailureReason, GenerationError
from bot.engine.events import (
    Event,
    GenerationCancelled,
    GenerationFailed,
    GenerationStarted,
    GenerationSucceeded,
    JobFinished,
    JobStarted,
    PlannedGeneration,
)
from bot.engine.models import GenerationRequest, ImageFile, JobRequest, new_job_id
from bot.engine.options import MAX_SEED
from bot.engine.ports import ImageProvider, ImageStore
from bot.engine.progress import JobProgress, final_status

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], Awaitable[None]]


def random_seed() -> int:
    return random.randint(1, MAX_SEED)


def plan_seeds(count: int, seed: int | None, pick: Callable[[], int] = random_seed) -> list[int]:
    """A given seed gives prompt i the seed `seed + i`, so duplicates differ yet the job is reproducible;
    no seed (or 0, which the API reads as "random") gives each prompt its own random seed."""
    if not seed:
        return [pick() for _ in range(count)]
    return [(seed + i - 1) % MAX_SEED + 1 for i in range(count)]


@dataclass
class JobHandle:
    """A submitted job: wait for its final progress, or cancel it."""

    job_id: str
    _progress: JobProgress
    _task: asyncio.Task[JobProgress] | None = None
    _generations: list[asyncio.Task[None]] = field(default_factory=list)
    cancel_requested: bool = False

    @property
    def progress(self) -> JobProgress:
        return self._progress

    def cancel(self) -> None:
        """Stop queued and running generations; finished ones stay as they are."""
        self.cancel_requested = True
        for task in self._generations:
            task.cancel()

    async def wait(self) -> JobProgress:
        assert self._task is not None
        return await asyncio.shield(self._task)


class JobRunner:
    def __init__(
        self,
        provider: ImageProvider,
        images: ImageStore,
        *,
        max_concurrent: int,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        seeds: Callable[[], int] = random_seed,
    ) -> None:
        self.provider = provider
        self.images = images
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrent)
        self._clock = clock
        self._seeds = seeds
        self._subscribers: list[Subscriber] = []
        self.jobs: dict[str, JobHandle] = {}

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every event, in order; returns a function that unsubscribes."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def submit(self, request: JobRequest, *, job_id: str | None = None) -> JobHandle:
        """Start a job in the background and return at once."""
        job_id = job_id or new_job_id()
        seeds = plan_seeds(len(request.prompts), request.options.seed, self._seeds)
        planned = tuple(
            PlannedGeneration(i, p, s) for i, (p, s) in enumerate(zip(request.prompts, seeds, strict=True))
        )
        started = JobStarted(job_id, request, planned, self._clock(), time.time())
        handle = JobHandle(job_id, JobProgress.start(started))
        self.jobs[job_id] = handle
        handle._task = asyncio.get_running_loop().create_task(
            self._run(handle, started), name=f"job-{job_id}"
        )
        return handle

    async def run(self, request: JobRequest, *, job_id: str | None = None) -> JobProgress:
        return await self.submit(request, job_id=job_id).wait()

    def cancel(self, job_id: str) -> bool:
        handle = self.jobs.get(job_id)
        if handle is None:
            return False
        handle.cancel()
        return True

    async def cancel_all(self) -> None:
        """Cancel every running job and wait until each has reported its end."""
        handles = list(self.jobs.values())
        for handle in handles:
            handle.cancel()
        await asyncio.gather(*(h.wait() for h in handles), return_exceptions=True)

    async def _run(self, handle: JobHandle, started: JobStarted) -> JobProgress:
        try:
            await self._publish(handle, started)
            log.info("job %s: started, %d prompt(s)", handle.job_id, len(started.generations))
            handle._generations = [
                asyncio.create_task(self._generate(handle, g), name=f"job-{handle.job_id}-{g.index}")
                for g in started.generations
            ]
            if handle.cancel_requested:
                handle.cancel()
            await asyncio.gather(*handle._generations, return_exceptions=True)
            status = final_status(handle.progress.generations)
            await self._publish(handle, JobFinished(handle.job_id, status, self._clock()))
            log.info(
                "job %s: finished %s in %.1fs", handle.job_id, status, handle.progress.elapsed(self._clock())
            )
            return handle.progress
        finally:
            self.jobs.pop(handle.job_id, None)

    async def _generate(self, handle: JobHandle, planned: PlannedGeneration) -> None:
        job_id, index = handle.job_id, planned.index
        try:
            async with self._slots:
                await self._publish(handle, GenerationStarted(job_id, index, self._clock()))
                outcome = await self._attempt(job_id, planned, handle.progress.request)
            if isinstance(outcome, ImageFile):
                await self._publish(handle, GenerationSucceeded(job_id, index, outcome, self._clock()))
            else:
                await self._publish(handle, GenerationFailed(job_id, index, outcome, self._clock()))
        except asyncio.CancelledError:
            if not handle.progress.generations[index].status.is_terminal:
                await self._publish(handle, GenerationCancelled(job_id, index, self._clock()))
            if not handle.cancel_requested:
                raise

    async def _attempt(
        self, job_id: str, planned: PlannedGeneration, request: JobRequest
    ) -> ImageFile | Failure:
        """One generation, start to file on disk, within the timeout; every failure becomes a `Failure`."""
        scratch = self.images.scratch_path(job_id, planned.index)
        kept = False
        try:
            async with asyncio.timeout(self.timeout):
                generated = await self.provider.generate(
                    GenerationRequest(planned.prompt, planned.seed, request.options), scratch
                )
                image = await self.images.keep(scratch, job_id, planned.index, generated)
                kept = True
                return image
        except GenerationError as exc:
            failure = exc.to_failure()
        except TimeoutError:
            failure = Failure.of(FailureReason.TIMED_OUT, f"no image after {self.timeout:g}s")
        except Exception as exc:  # a bug in a provider must not take the job down
            log.exception("job %s: generation %d crashed", job_id, planned.index)
            failure = Failure.of(FailureReason.INTERNAL, repr(exc))
        finally:
            if not kept:
                await asyncio.shield(self.images.discard(scratch))
        log.warning(
            "job %s: generation %d failed: %s (%s)", job_id, planned.index, failure.reason, failure.detail
        )
        return failure

    async def _publish(self, handle: JobHandle, event: Event) -> None:
        handle._progress = handle._progress.apply(event)
        for subscriber in list(self._subscribers):
            try:
                await subscriber(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "job %s: subscriber %r failed on %s", handle.job_id, subscriber, type(event).__name__
                )
