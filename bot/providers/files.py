"""Writing an image to disk as it streams in, without blocking the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO


class ScratchWriter:
    """Writes a stream of chunks to a scratch file off the event loop.

    Chunks are collected (not copied into one buffer) and handed to a worker thread in batches of about
    `buffer_bytes`, so a 1.5 MB image costs a few thread hops and no extra copies of its bytes.
    """

    def __init__(self, path: Path, *, buffer_bytes: int = 256 * 1024) -> None:
        self.path = path
        self._chunks: list[bytes] = []
        self._pending = 0
        self._limit = buffer_bytes
        self.size = 0
        self._file: BinaryIO | None = None

    async def __aenter__(self) -> ScratchWriter:
        self._file = await asyncio.to_thread(_open_for_writing, self.path)
        return self

    async def write(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._pending += len(chunk)
        self.size += len(chunk)
        if self._pending >= self._limit:
            await self._flush()

    async def _flush(self) -> None:
        if self._chunks:
            assert self._file is not None, "write() outside `async with`"
            chunks, self._chunks, self._pending = self._chunks, [], 0
            await asyncio.to_thread(self._file.writelines, chunks)

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                await self._flush()
        finally:
            if self._file is not None:
                await asyncio.to_thread(self._file.close)


def _open_for_writing(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "wb")


async def write_file(path: Path, data: bytes) -> None:
    """Write a whole image that arrived in one piece (base64 JSON, a locally drawn picture)."""
    async with ScratchWriter(path, buffer_bytes=len(data) + 1) as writer:
        await writer.write(data)
