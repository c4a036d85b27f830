"""Jobs, generations and images as plain frozen data: what the engine works on and reports."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from pathlib import Path

from bot.engine.options import GenerationOptions

# No 0/o, 1/l/i: a job id is read off a screen and typed back into /job.
_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
JOB_ID_LENGTH = 8


def new_job_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(JOB_ID_LENGTH))


class GenerationStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.CANCELLED)


class JobStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every prompt gave an image
    PARTIAL = "partial"  # some did, some failed
    FAILED = "failed"  # none did
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Requester:
    """Who asked: a Discord user id and display name, or `cli` for the command line."""

    id: str
    name: str


@dataclass(frozen=True)
class Place:
    """Where the job was asked for; both None outside Discord, guild None in direct messages."""

    guild_id: int | None = None
    channel_id: int | None = None


@dataclass(frozen=True)
class JobRequest:
    requester: Requester
    place: Place
    prompts: tuple[str, ...]
    options: GenerationOptions


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt as sent to a provider: the seed is always chosen before asking, so it is known and kept."""

    prompt: str
    seed: int
    options: GenerationOptions


@dataclass(frozen=True)
class ProviderImage:
    """What a provider reports after writing an image file."""

    seed: int
    format: str  # "png", "jpeg" or "webp"


@dataclass(frozen=True)
class ImageFile:
    """An image safely on disk; its bytes are not kept in memory."""

    path: Path
    format: str
    width: int
    height: int
    size_bytes: int
    seed: int
