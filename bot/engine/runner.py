"""Running jobs: every generation of every job concurrently, under one global limit (shared fairly between
requesters), a per-generation deadline and a retry policy. A failure or timeout never touches its siblings;
cancelling a job stops its queued and running generations cleanly; shutting down leaves unfinished work
as it was recorded, to be resumed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot.engine.errors import Failure, FailureReason, GenerationError
from bot.engine.events import (
    Event,
    GenerationCancelled,
    GenerationFailed,
    GenerationStarted,
    GenerationSucceeded,
    JobFinished,
    JobResumed,
    JobStarted,
    PlannedGeneration,
)
from bot.engine.models import GenerationRequest, ImageFile, JobRequest, new_job_id
from bot.engine.options import MAX_SEED
from bot.engine.ports import ImageProvider, ImageStore
from bot.engine.progress import JobProgress, final_status
from bot.engine.ratelimit import RequestLimiter
from bot.engine.retry import RetryPolicy
from bot.engine.slots import FairSlots

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], Awaitable[None]]


class RunnerClosed(Exception):
    """The runner is shutting down and takes no new jobs."""


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
    interrupted: bool = False  # the runner shut down: leave the rest as recorded, for resumption

    @property
    def progress(self) -> JobProgress:
        return self._progress

    def cancel(self) -> None:
        """Stop queued and running generations; finished ones stay as they are."""
        self.cancel_requested = True
        for task in self._generations:
            task.cancel()

    def interrupt(self) -> None:
        self.interrupted = True
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
        retry: RetryPolicy | None = None,
        limiter: RequestLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        seeds: Callable[[], int] = random_seed,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.images = images
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.limiter = limiter
        self.slots = FairSlots(max_concurrent)
        self.accepting = True
        self._clock = clock
        self._seeds = seeds
        self._sleep = sleep
        self._subscribers: list[Subscriber] = []
        self.jobs: dict[str, JobHandle] = {}

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every event, in order; returns a function that unsubscribes."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def submit(
        self, request: JobRequest, *, job_id: str | None = None, seeds: Sequence[int] | None = None
    ) -> JobHandle:
        """Start a job in the background and return at once. `seeds` (one per prompt) repeat exact
        generations, e.g. to retry failed ones; otherwise they are planned from the options."""
        job_id = job_id or new_job_id()
        if seeds is None:
            seeds = plan_seeds(len(request.prompts), request.options.seed, self._seeds)
        planned = tuple(
            PlannedGeneration(i, p, s) for i, (p, s) in enumerate(zip(request.prompts, seeds, strict=True))
        )
        started = JobStarted(job_id, request, planned, self._clock(), time.time())
        return self._start(JobProgress.start(started), started)

    def resume(self, progress: JobProgress) -> JobHandle:
        """Carry on with a job from an earlier run: only its queued and running generations are run again,
        with the seeds they were given; finished ones are left as they are."""
        return self._start(progress, JobResumed(progress.job_id, progress, self._clock()))

    async def run(self, request: JobRequest, *, job_id: str | None = None) -> JobProgress:
        return await self.submit(request, job_id=job_id).wait()

    def cancel(self, job_id: str) -> bool:
        handle = self.jobs.get(job_id)
        if handle is None:
            return False
        handle.cancel()
        return True

    def queue_positions(self, job_id: str) -> dict[int, int]:
        """Index → 1-based place in the queue, for this job's generations that wait for a slot."""
        return {
            ticket.label[1]: place
            for place, ticket in enumerate(self.slots.waiting(), start=1)
            if isinstance(ticket.label, tuple) and ticket.label[0] == job_id
        }

    async def shutdown(self, grace: float) -> None:
        """Take no new jobs; give running ones `grace` seconds, then interrupt the rest. Interrupted work
        publishes nothing more, so what was recorded is what a restart resumes."""
        self.accepting = False
        handles = list(self.jobs.values())
        tasks = [h._task for h in handles if h._task is not None]
        if not tasks:
            return
        log.info("shutting down: %d job(s) running, waiting up to %.0fs", len(tasks), grace)
        _, pending = await asyncio.wait(tasks, timeout=grace) if grace > 0 else (set(), set(tasks))
        for handle in handles:
            if handle._task in pending:
                log.info("job %s: interrupted by shutdown; it will resume at the next start", handle.job_id)
                handle.interrupt()
        await asyncio.gather(*pending, return_exceptions=True)

    def _start(self, progress: JobProgress, first: JobStarted | JobResumed) -> JobHandle:
        if not self.accepting:
            raise RunnerClosed("the bot is shutting down")
        handle = JobHandle(progress.job_id, progress)
        self.jobs[handle.job_id] = handle
        handle._task = asyncio.get_running_loop().create_task(
            self._run(handle, first), name=f"job-{handle.job_id}"
        )
        return handle

    async def _run(self, handle: JobHandle, first: JobStarted | JobResumed) -> JobProgress:
        try:
            await self._publish(handle, first)
            todo = [g for g in handle.progress.generations if not g.status.is_terminal]
            log.info("job %s: %s, %d prompt(s) to run", handle.job_id, type(first).__name__, len(todo))
            handle._generations = [
                asyncio.create_task(
                    self._generate(handle, PlannedGeneration(g.index, g.prompt, g.seed)),
                    name=f"job-{handle.job_id}-{g.index}",
                )
                for g in todo
            ]
            if handle.cancel_requested:
                handle.cancel()
            await asyncio.gather(*handle._generations, return_exceptions=True)
            if not handle.interrupted:
                status = final_status(handle.progress.generations)
                await self._publish(handle, JobFinished(handle.job_id, status, self._clock()))
                log.info("job %s: %s in %.1fs", handle.job_id, status, handle.progress.elapsed(self._clock()))
            return handle.progress
        finally:
            self.jobs.pop(handle.job_id, None)

    async def _generate(self, handle: JobHandle, planned: PlannedGeneration) -> None:
        job_id, index = handle.job_id, planned.index
        try:
            async with self.slots.slot(handle.progress.request.requester.id, (job_id, index)):
                await self._publish(handle, GenerationStarted(job_id, index, self._clock()))
                outcome = await self._attempts(job_id, planned, handle.progress.request)
            if isinstance(outcome, ImageFile):
                await self._publish(handle, GenerationSucceeded(job_id, index, outcome, self._clock()))
            else:
                await self._publish(handle, GenerationFailed(job_id, index, outcome, self._clock()))
        except asyncio.CancelledError:
            if handle.interrupted:
                return
            if not handle.progress.generations[index].status.is_terminal:
                await self._publish(handle, GenerationCancelled(job_id, index, self._clock()))
            if not handle.cancel_requested:
                raise

    async def _attempts(
        self, job_id: str, planned: PlannedGeneration, request: JobRequest
    ) -> ImageFile | Failure:
        """One generation, start to file on disk, retried by the policy within one deadline; every
        failure becomes a `Failure`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._attempt(job_id, planned, request)
            except GenerationError as exc:
                failure = exc.to_failure()
                if not exc.retryable or attempt >= self.retry.attempts:
                    break
                delay = self.retry.delay(attempt, None if self.limiter else exc.retry_after)
                if loop.time() + delay >= deadline:
                    break
                log.info(
                    "job %s: generation %d attempt %d failed (%s); retrying in %.1fs",
                    job_id,
                    planned.index,
                    attempt,
                    exc.reason,
                    delay,
                )
                await self._sleep(delay)
            except TimeoutError:
                failure = Failure.of(FailureReason.TIMED_OUT, f"no image after {self.timeout:g}s")
                break
            except Exception as exc:  # a bug in a provider must not take the job down
                log.exception("job %s: generation %d crashed", job_id, planned.index)
                failure = Failure.of(FailureReason.INTERNAL, repr(exc))
                break
        log.warning(
            "job %s: generation %d failed after %d attempt(s): %s (%s)",
            job_id,
            planned.index,
            attempt,
            failure.reason,
            failure.detail,
        )
        return failure

    async def _attempt(self, job_id: str, planned: PlannedGeneration, request: JobRequest) -> ImageFile:
        scratch = self.images.scratch_path(job_id, planned.index)
        kept = False
        try:
            async with self.limiter.slot() if self.limiter else contextlib.nullcontext():
                try:
                    generated = await self.provider.generate(
                        GenerationRequest(planned.prompt, planned.seed, request.options), scratch
                    )
                except GenerationError as exc:
                    if exc.reason is FailureReason.RATE_LIMITED and self.limiter is not None:
                        # Before this request's place is given back: whoever it wakes must find the key
                        # blocked, not slip a request in while the 429 is still being handled.
                        retry_after = exc.retry_after
                        if retry_after is not None:  # a server asking for hours must not stall the bot
                            retry_after = min(retry_after, self.retry.max_retry_after)
                        self.limiter.block(retry_after)
                    raise
            image = await self.images.keep(scratch, job_id, planned.index, generated)
            kept = True
            return image
        finally:
            if not kept:
                await asyncio.shield(self.images.discard(scratch))

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
