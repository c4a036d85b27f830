"""Real engine events and requests for storage tests."""

from pathlib import Path

from bot.engine.events import JobStarted, PlannedGeneration
from bot.engine.models import ImageFile, JobRequest, Place, Requester
from bot.engine.options import GenerationOptions

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def request(
    *prompts: str,
    user: str = "u1",
    guild: int | None = 10,
    channel: int | None = 20,
    options: GenerationOptions | None = None,
) -> JobRequest:
    return JobRequest(
        Requester(user, f"name-{user}"), Place(guild, channel), prompts, options or GenerationOptions()
    )


def job_started(job_id: str, req: JobRequest, *, wall_time: float = T0, first_seed: int = 100) -> JobStarted:
    planned = tuple(PlannedGeneration(i, p, first_seed + i) for i, p in enumerate(req.prompts))
    return JobStarted(job_id, req, planned, at=5.0, wall_time=wall_time)


def image(tmp: Path, job_id: str, index: int, seed: int = 4242) -> ImageFile:
    return ImageFile(tmp / job_id / f"{index + 1:02d}-{seed}.png", "png", 1024, 768, 123_456, seed)
