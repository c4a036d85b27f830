"""Shared pieces of the benchmarks: a fake Stability server in its own process, and process figures."""

from __future__ import annotations

import asyncio
import resource
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def fake_stability_process(*args: str) -> AsyncIterator[str]:
    """Start `python -m tests.fakes.stability` and yield its base URL; its memory is not ours."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.stability",
        "--port",
        "0",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"fake Stability server did not start: {line!r}")
        yield line.removeprefix("LISTENING ")
    finally:
        process.terminate()
        await process.wait()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
