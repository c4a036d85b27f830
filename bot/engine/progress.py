"""Folding events into a snapshot of a job: a pure function every renderer (CLI, Discord) starts from."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.engine.errors import Failure
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
from bot.engine.models import GenerationStatus, ImageFile, JobRequest, JobStatus


@dataclass(frozen=True)
class GenerationState:
    index: int
    prompt: str
    seed: int
    status: GenerationStatus = GenerationStatus.QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    image: ImageFile | None = None
    failure: Failure | None = None

    def elapsed(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at if self.finished_at is not None else now) - self.started_at


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    request: JobRequest
    generations: tuple[GenerationState, ...]
    started_at: float
    finished_at: float | None = None
    status: JobStatus = JobStatus.RUNNING

    @classmethod
    def start(cls, event: JobStarted) -> JobProgress:
        states = tuple(GenerationState(g.index, g.prompt, g.seed) for g in event.generations)
        return cls(event.job_id, event.request, states, event.at)

    def count(self, status: GenerationStatus) -> int:
        return sum(1 for g in self.generations if g.status is status)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def elapsed(self, now: float) -> float:
        return (self.finished_at if self.finished_at is not None else now) - self.started_at

    def apply(self, event: Event) -> JobProgress:
        """The snapshot after `event`.

        Events of other jobs, and events arriving after a generation ended, change nothing."""
        if isinstance(event, JobStarted | JobResumed) or event.job_id != self.job_id:
            return self
        if isinstance(event, JobFinished):
            return replace(self, finished_at=event.at, status=event.status)
        state = self.generations[event.index]
        if state.status.is_terminal:
            return self
        match event:
            case GenerationStarted():
                state = replace(state, status=GenerationStatus.RUNNING, started_at=event.at)
            case GenerationSucceeded():
                state = replace(
                    state,
                    status=GenerationStatus.SUCCEEDED,
                    finished_at=event.at,
                    image=event.image,
                    seed=event.image.seed,
                )
            case GenerationFailed():
                state = replace(
                    state, status=GenerationStatus.FAILED, finished_at=event.at, failure=event.failure
                )
            case GenerationCancelled():
                state = replace(state, status=GenerationStatus.CANCELLED, finished_at=event.at)
        generations = (*self.generations[: event.index], state, *self.generations[event.index + 1 :])
        return replace(self, generations=generations)


def final_status(generations: tuple[GenerationState, ...]) -> JobStatus:
    statuses = [g.status for g in generations]
    if GenerationStatus.CANCELLED in statuses:
        return JobStatus.CANCELLED
    succeeded = statuses.count(GenerationStatus.SUCCEEDED)
    if succeeded == len(statuses):
        return JobStatus.SUCCEEDED
    return JobStatus.PARTIAL if succeeded else JobStatus.FAILED
