"""`python -m bot imagine`: the engine without Discord, with a live per-prompt display on the terminal."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TextIO

from bot.app import Services, open_services
from bot.config import Settings
from bot.engine.events import Event, GenerationStarted, JobFinished
from bot.engine.models import GenerationStatus, JobRequest, JobStatus, Place, Requester
from bot.engine.options import ASPECT_RATIOS, MODELS, STYLES, GenerationOptions
from bot.engine.progress import GenerationState, JobProgress
from bot.engine.prompts import PromptError, parse_prompts
from bot.storage.database import StorageError
from bot.storage.images import ImageFiles
from bot.tasks import spawn

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_MARKS = {
    GenerationStatus.QUEUED: "…",
    GenerationStatus.RUNNING: "⟳",
    GenerationStatus.SUCCEEDED: "✔",
    GenerationStatus.FAILED: "✘",
    GenerationStatus.CANCELLED: "■",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prompts", help="comma-separated prompts; quote one to keep its commas: 'a, \"b, c\"'"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for the images (default: ./out)"
    )
    parser.add_argument("--model", choices=list(MODELS), help="model (default: STABILITY_MODEL)")
    parser.add_argument("--aspect-ratio", choices=ASPECT_RATIOS, default="1:1")
    parser.add_argument("--negative-prompt", help="what to keep out of every image")
    parser.add_argument("--seed", type=int, help="seed for the first prompt; the next get seed+1, seed+2, …")
    parser.add_argument("--style", choices=STYLES, help="style preset")


def build_request(args: argparse.Namespace, settings: Settings) -> JobRequest:
    """The job the arguments ask for; raises PromptError / ValueError with a message for the user."""
    prompts = parse_prompts(args.prompts, max_prompts=settings.max_prompts)
    options = GenerationOptions(
        model=args.model or settings.stability_model,
        aspect_ratio=args.aspect_ratio,
        negative_prompt=args.negative_prompt or None,
        style=args.style,
        seed=args.seed,
    )
    if problems := options.problems():
        raise ValueError(" ".join(problems))
    return JobRequest(Requester("cli", "command line"), Place(), tuple(prompts), options)


def render_line(state: GenerationState, now: float, width: int = 60) -> str:
    """One prompt's line: `✔ 1. a red fox — done in 2.1s → out/x.png`."""
    prompt = state.prompt if len(state.prompt) <= width else state.prompt[: width - 1] + "…"
    head = f"{_MARKS[state.status]} {state.index + 1}. {prompt}"
    elapsed = state.elapsed(now)
    match state.status:
        case GenerationStatus.QUEUED:
            return f"{head} — queued"
        case GenerationStatus.RUNNING:
            return f"{head} — generating ({elapsed or 0:.0f}s)"
        case GenerationStatus.SUCCEEDED:
            path = state.image.path if state.image else "?"
            return f"{head} — done in {elapsed or 0:.1f}s → {path}"
        case GenerationStatus.FAILED:
            return f"{head} — failed: {state.failure.message if state.failure else 'unknown'}"
        case _:
            return f"{head} — cancelled"


def render_summary(progress: JobProgress, now: float) -> str:
    done = progress.count(GenerationStatus.SUCCEEDED)
    failed = progress.count(GenerationStatus.FAILED)
    total = len(progress.generations)
    parts = [f"{done}/{total} image(s) saved"]
    if failed:
        parts.append(f"{failed} failed")
    if cancelled := progress.count(GenerationStatus.CANCELLED):
        parts.append(f"{cancelled} cancelled")
    return f"Job {progress.job_id}: {', '.join(parts)} in {progress.elapsed(now):.1f}s."


class TerminalDisplay:
    """Redraws the prompt lines in place on a terminal; prints one line per change elsewhere (pipes, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.clock = time.monotonic
        self._drawn = 0
        self._encoding = _encoding_of(stream)

    def write(self, text: str) -> None:
        """Write and flush at once, so a pipe sees each change as it happens. A character the stream cannot
        encode (✔ on a cp1252 or ASCII console) becomes `?`: raising would lose the whole line."""
        if self._encoding is not None:
            text = text.encode(self._encoding, "replace").decode(self._encoding)
        self.stream.write(text)
        self.stream.flush()

    def draw(self, progress: JobProgress) -> None:
        lines = [render_line(g, self.clock()) for g in progress.generations]
        clear = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.write(clear + "\n".join(lines) + "\n")
        self._drawn = len(lines)

    def event(self, progress: JobProgress, event: Event) -> None:
        if self.live:
            self.draw(progress)
        elif not isinstance(event, GenerationStarted | JobFinished) and hasattr(event, "index"):
            self.write(render_line(progress.generations[event.index], self.clock()) + "\n")


def _encoding_of(stream: TextIO) -> str | None:
    """The stream's encoding when it may be unable to show our marks; None for UTF-8 and unknown ones."""
    try:
        name = codecs.lookup(getattr(stream, "encoding", None) or "utf-8").name
    except LookupError:
        return None
    return None if name.startswith("utf") else name


async def run_imagine(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Runs one job from the arguments; returns the process's exit code."""
    try:
        request = build_request(args, settings)
        out_dir = _prepare_out_dir(args.out)
    except (PromptError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    display = TerminalDisplay(out or sys.stdout)
    async with AsyncExitStack() as stack:
        try:
            services = await stack.enter_async_context(
                open_services(settings, images=ImageFiles(out_dir, flat=True))
            )
        except (OSError, sqlite3.Error, StorageError) as exc:
            # Before any job exists: an unusable DATA_DIR is a settings problem, not a crash.
            sys.stderr.write(f"error: cannot open the database in DATA_DIR={settings.data_dir}: {exc}\n")
            return EXIT_USAGE
        code = await _run_job(services, request, display)
    return code


def _prepare_out_dir(out_dir: Path) -> Path:
    """Create `--out` before anything is sent: a bad folder is the user's to fix, not a failed image each."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot write images to {out_dir}: {exc.strerror or exc}") from exc
    return out_dir


async def _run_job(services: Services, request: JobRequest, display: TerminalDisplay) -> int:
    job = services.runner.submit(request)

    async def on_event(event: Event) -> None:
        if getattr(event, "job_id", None) == job.job_id:
            display.event(job.progress, event)  # the runner folds the event in before telling us

    services.runner.subscribe(on_event)
    if display.live:
        display.draw(job.progress)
    ticker = spawn(_tick(display, lambda: job.progress), name=f"cli-ticker-{job.job_id}")
    try:
        progress = await job.wait()
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels us; stop the job and say what was kept
        job.cancel()
        progress = await job.wait()
        display.write(render_summary(progress, time.monotonic()) + "\n")
        return EXIT_INTERRUPTED
    finally:
        ticker.cancel()
    if display.live:
        display.draw(progress)
    display.write(render_summary(progress, time.monotonic()) + "\n")
    return EXIT_OK if progress.status is JobStatus.SUCCEEDED else EXIT_FAILED


async def _tick(display: TerminalDisplay, current: Callable[[], JobProgress]) -> None:
    """Keeps the elapsed seconds of running prompts moving on a live terminal."""
    if not display.live:
        return
    while True:
        await asyncio.sleep(0.5)
        display.draw(current())
