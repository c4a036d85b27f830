"""Progress events the engine publishes; the CLI, the database recorder and Discord subscribe to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.engine.errors import Failure
from bot.engine.models import ImageFile, JobRequest, JobStatus

if TYPE_CHECKING:
    from bot.engine.progress import JobProgress


@dataclass(frozen=True)
class PlannedGeneration:
    index: int
    prompt: str
    seed: int


@dataclass(frozen=True)
class JobStarted:
    job_id: str
    request: JobRequest
    generations: tuple[PlannedGeneration, ...]
    at: float  # monotonic clock of the engine
    wall_time: float  # seconds since the epoch, for records


@dataclass(frozen=True)
class JobResumed:
    """A job from an earlier run carries on; `progress` is where it stood (finished prompts stay finished)."""

    job_id: str
    progress: JobProgress
    at: float


@dataclass(frozen=True)
class GenerationStarted:
    job_id: str
    index: int
    at: float


@dataclass(frozen=True)
class GenerationSucceeded:
    job_id: str
    index: int
    image: ImageFile
    at: float


@dataclass(frozen=True)
class GenerationFailed:
    job_id: str
    index: int
    failure: Failure
    at: float


@dataclass(frozen=True)
class GenerationCancelled:
    job_id: str
    index: int
    at: float


@dataclass(frozen=True)
class JobFinished:
    job_id: str
    status: JobStatus
    at: float


Event = (
    JobStarted
    | JobResumed
    | GenerationStarted
    | GenerationSucceeded
    | GenerationFailed
    | GenerationCancelled
    | JobFinished
)
