"""What the engine needs from the outside world, as protocols it can be given in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bot.engine.models import GenerationRequest, ImageFile, ProviderImage


class ImageProvider(Protocol):
    """An image API. Writes the image to `dest` (never holding it whole in memory when it can stream) and
    raises a `GenerationError` subclass for every failure."""

    name: str

    async def generate(self, request: GenerationRequest, dest: Path) -> ProviderImage: ...


class ImageStore(Protocol):
    """Where images live: a scratch path to write to, then kept under their job, or discarded."""

    def scratch_path(self, job_id: str, index: int) -> Path: ...

    async def keep(self, scratch: Path, job_id: str, index: int, image: ProviderImage) -> ImageFile:
        """Check the scratch file is a real image and move it into place; raise `InvalidImage` if not."""
        ...

    async def discard(self, scratch: Path) -> None: ...
