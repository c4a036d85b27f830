"""`python -m bot imagine`: the engine without Discord, with a live per-prompt display on the terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bot.app import open_services
from bot.config import Settings
from bot.engine.events import Event, GenerationStarted, JobFinished
from bot.engine.models import GenerationStatus, JobRequest, JobStatus, Place, Requester
from bot.engine.options import ASPECT_RATIOS, MODELS, STYLES, GenerationOptions
from bot.engine.progress import GenerationState, JobProgress
from bot.engine.prompts import PromptError, parse_prompts
from bot.storage.images import ImageFiles

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

    def draw(self, progress: JobProgress) -> None:
        lines = [render_line(g, self.clock()) for g in progress.generations]
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)

    def event(self, progress: JobProgress, event: Event) -> None:
        if self.live:
            self.draw(progress)
        elif not isinstance(event, GenerationStarted | JobFinished) and hasattr(event, "index"):
            self.stream.write(render_line(progress.generations[event.index], self.clock()) + "\n")
            self.stream.flush()


async def run_imagine(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    try:
        request = build_request(args, settings)
    except (PromptError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    display = TerminalDisplay(out)
    async with open_services(settings, images=ImageFiles(args.out, flat=True)) as services:
        job = services.runner.submit(request)

        async def on_event(event: Event) -> None:
            if getattr(event, "job_id", None) == job.job_id:
                display.event(job.progress, event)  # the runner folds the event in before telling us

        services.runner.subscribe(on_event)
        if display.live:
            display.draw(job.progress)
        ticker = asyncio.create_task(_tick(display, lambda: job.progress))
        try:
            progress = await job.wait()
        except asyncio.CancelledError:
            job.cancel()
            progress = await job.wait()
            out.write(render_summary(progress, time.monotonic()) + "\n")
            return EXIT_INTERRUPTED
        finally:
            ticker.cancel()
        if display.live:
            display.draw(progress)
        out.write(render_summary(progress, time.monotonic()) + "\n")
    return EXIT_OK if progress.status is JobStatus.SUCCEEDED else EXIT_FAILED


async def _tick(display: TerminalDisplay, current: Callable[[], JobProgress]) -> None:
    """Keeps the elapsed seconds of running prompts moving on a live terminal."""
    if not display.live:
        return
    while True:
        await asyncio.sleep(0.5)
        display.draw(current())
