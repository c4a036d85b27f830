"""A scripted in-process image provider for engine tests: each prompt can be told how to behave, and the
provider records what overlapped with what, so tests can prove concurrency without timing anything."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from bot.engine.models import GenerationRequest, ProviderImage

Script = Callable[[GenerationRequest], Awaitable[bytes | None]]


def tiny_png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed % 256, 80, 160)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class ScriptedProvider:
    """Succeeds at once with a tiny PNG unless `scripts` has an entry for the prompt.

    A script is an async function of the request: it may wait, raise, or return the bytes to write.
    """

    scripts: dict[str, Script] = field(default_factory=dict)
    name: str = "scripted"
    in_flight: int = 0
    max_in_flight: int = 0
    started: list[str] = field(default_factory=list)
    requests: list[GenerationRequest] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def generate(self, request: GenerationRequest, dest: Path) -> ProviderImage:
        self.requests.append(request)
        await self._enter(request.prompt)
        try:
            script = self.scripts.get(request.prompt)
            data = await script(request) if script else None
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(tiny_png(request.seed) if data is None else data)
            return ProviderImage(request.seed, "png")
        finally:
            await self._leave()

    async def _enter(self, prompt: str) -> None:
        async with self.changed:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.started.append(prompt)
            self.changed.notify_all()

    async def _leave(self) -> None:
        async with self.changed:
            self.in_flight -= 1
            self.changed.notify_all()

    async def wait_until(self, predicate: Callable[[ScriptedProvider], bool], timeout: float = 5) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: predicate(self))


def raises(error: BaseException) -> Script:
    async def script(request: GenerationRequest) -> bytes | None:
        raise error

    return script


def waits_for(event: asyncio.Event, then: bytes | None = None) -> Script:
    async def script(request: GenerationRequest) -> bytes | None:
        await event.wait()
        return then

    return script


def returns(data: bytes) -> Script:
    async def script(request: GenerationRequest) -> bytes | None:
        return data

    return script
