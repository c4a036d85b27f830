"""The CLI's pure parts: the arguments → the job request, one prompt's line, the summary, the display."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from bot.__main__ import build_parser
from bot.cli import TerminalDisplay, build_request, render_line, render_summary
from bot.config import Secret, Settings
from bot.engine.errors import Failure, FailureReason
from bot.engine.events import GenerationSucceeded
from bot.engine.models import GenerationStatus, ImageFile, JobRequest, Place, Requester
from bot.engine.options import MAX_SEED, GenerationOptions
from bot.engine.progress import GenerationState, JobProgress
from bot.engine.prompts import PromptError

S = GenerationStatus
SETTINGS = Settings(
    discord_token=Secret(""), stability_api_key=Secret("sk-test"), stability_model="ultra", max_prompts=3
)
CLI = Requester("cli", "command line")
IMAGE = ImageFile(Path("out/abc-01-7.png"), "png", 64, 64, 1234, 7)


def request_for(*argv: str) -> JobRequest:
    return build_request(build_parser().parse_args(["imagine", *argv]), SETTINGS)


# --- build_request --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "prompts", "options"),
    [
        pytest.param(
            ["a red fox"], ("a red fox",), GenerationOptions(model="ultra"), id="defaults-from-settings"
        ),
        pytest.param(
            ['a red fox, "a castle, at dusk", robotic dog'],
            ("a red fox", "a castle, at dusk", "robotic dog"),
            GenerationOptions(model="ultra"),
            id="quotes-keep-commas",
        ),
        pytest.param(
            [
                "fox",
                "--model",
                "core",
                "--aspect-ratio",
                "9:16",
                "--negative-prompt",
                "blur",
                "--style",
                "anime",
            ],
            ("fox",),
            GenerationOptions("core", "9:16", "blur", "anime"),
            id="every-option",
        ),
        pytest.param(
            ["fox", "--negative-prompt", ""], ("fox",), GenerationOptions("ultra"), id="empty-negative"
        ),
        pytest.param(
            ["fox", "--seed", "0"], ("fox",), GenerationOptions("ultra", seed=0), id="seed-0-random"
        ),
        pytest.param(
            ["fox", "--seed", str(MAX_SEED)],
            ("fox",),
            GenerationOptions("ultra", seed=MAX_SEED),
            id="seed-max",
        ),
    ],
)
def test_build_request(argv: list[str], prompts: tuple[str, ...], options: GenerationOptions) -> None:
    assert request_for(*argv) == JobRequest(CLI, Place(), prompts, options)


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        pytest.param(['a, "b'], PromptError, "never closed", id="unbalanced-quote"),
        pytest.param(["a, b, c, d"], PromptError, "the limit is 3", id="over-max-prompts"),
        pytest.param([" , "], PromptError, "No prompt given", id="no-prompt"),
        pytest.param(["fox", "--seed", "-1"], ValueError, "Seed must be between", id="negative-seed"),
        pytest.param(
            ["fox", "--seed", str(MAX_SEED + 1)], ValueError, "Seed must be between", id="seed-too-big"
        ),
        pytest.param(
            ["fox", "--negative-prompt", "x" * 10_001], ValueError, "negative prompt", id="long-negative"
        ),
    ],
)
def test_build_request_refuses(argv: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        request_for(*argv)


# --- render_line ----------------------------------------------------------------------------------------

QUEUED = GenerationState(0, "a red fox", 7)


@pytest.mark.parametrize(
    ("state", "now", "line"),
    [
        pytest.param(QUEUED, 50.0, "… 1. a red fox — queued", id="queued"),
        pytest.param(
            replace(QUEUED, status=S.RUNNING, started_at=10.0),
            12.6,
            "⟳ 1. a red fox — generating (3s)",
            id="running",
        ),
        pytest.param(
            replace(QUEUED, index=1, status=S.SUCCEEDED, started_at=10.0, finished_at=12.14, image=IMAGE),
            99.0,
            "✔ 2. a red fox — done in 2.1s → out/abc-01-7.png",
            id="done-time-stops-at-finish",
        ),
        pytest.param(
            replace(
                QUEUED,
                status=S.FAILED,
                started_at=1.0,
                finished_at=2.0,
                failure=Failure.of(FailureReason.MODERATION),
            ),
            5.0,
            "✘ 1. a red fox — failed: blocked by content moderation: rephrase the prompt",
            id="failed",
        ),
        pytest.param(
            replace(QUEUED, status=S.FAILED, failure=Failure(FailureReason.REJECTED, "rejected: bad size")),
            5.0,
            "✘ 1. a red fox — failed: rejected: bad size",
            id="failed-with-the-api-s-words",
        ),
        pytest.param(
            replace(QUEUED, status=S.FAILED), 5.0, "✘ 1. a red fox — failed: unknown", id="failed-no-reason"
        ),
        pytest.param(
            replace(QUEUED, index=9, status=S.CANCELLED), 5.0, "■ 10. a red fox — cancelled", id="cancelled"
        ),
    ],
)
def test_render_line(state: GenerationState, now: float, line: str) -> None:
    assert render_line(state, now) == line


@pytest.mark.parametrize(
    ("prompt", "shown"),
    [
        pytest.param("abcdefghij", "abcdefghij", id="exactly-the-width"),
        pytest.param("abcdefghijk", "abcdefghi…", id="one-over"),
        pytest.param("a castle, at dusk, in the rain", "a castle,…", id="long"),
    ],
)
def test_render_line_shortens_long_prompts_to_the_width(prompt: str, shown: str) -> None:
    assert render_line(GenerationState(0, prompt, 1), 0.0, width=10) == f"… 1. {shown} — queued"


# --- render_summary -------------------------------------------------------------------------------------


def progress_of(*statuses: GenerationStatus, finished_at: float | None = 103.3) -> JobProgress:
    request = JobRequest(CLI, Place(), tuple(f"p{i}" for i in range(len(statuses))), GenerationOptions())
    states = tuple(GenerationState(i, f"p{i}", i, status) for i, status in enumerate(statuses))
    return JobProgress("abc23456", request, states, started_at=100.0, finished_at=finished_at)


@pytest.mark.parametrize(
    ("progress", "summary"),
    [
        pytest.param(progress_of(S.SUCCEEDED, S.SUCCEEDED), "2/2 image(s) saved in 3.3s.", id="all-done"),
        pytest.param(
            progress_of(S.SUCCEEDED, S.FAILED, S.SUCCEEDED),
            "2/3 image(s) saved, 1 failed in 3.3s.",
            id="partial",
        ),
        pytest.param(progress_of(S.FAILED), "0/1 image(s) saved, 1 failed in 3.3s.", id="all-failed"),
        pytest.param(
            progress_of(S.SUCCEEDED, S.FAILED, S.CANCELLED, S.CANCELLED),
            "1/4 image(s) saved, 1 failed, 2 cancelled in 3.3s.",
            id="interrupted",
        ),
        pytest.param(
            progress_of(S.RUNNING, S.QUEUED, finished_at=None),
            "0/2 image(s) saved in 7.5s.",
            id="still-running",
        ),
    ],
)
def test_render_summary(progress: JobProgress, summary: str) -> None:
    assert render_summary(progress, now=107.5) == f"Job abc23456: {summary}"


# --- TerminalDisplay ------------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def succeeded(progress: JobProgress, index: int) -> tuple[JobProgress, GenerationSucceeded]:
    event = GenerationSucceeded(progress.job_id, index, IMAGE, at=101.0)
    return progress.apply(event), event


def test_a_pipe_gets_one_line_per_finished_prompt() -> None:
    stream = io.StringIO()
    display = TerminalDisplay(stream)
    display.event(*succeeded(progress_of(S.RUNNING, S.RUNNING), 1))

    assert stream.getvalue() == "✔ 2. p1 — done in 0.0s → out/abc-01-7.png\n"


def test_a_terminal_is_redrawn_in_place() -> None:
    stream = Tty()
    display = TerminalDisplay(stream)
    display.clock = lambda: 100.0
    progress = progress_of(S.QUEUED, S.QUEUED)
    display.draw(progress)
    display.event(*succeeded(progress, 0))

    first, second = "… 1. p0 — queued\n… 2. p1 — queued\n", "✔ 1. p0 — done in 0.0s → out/abc-01-7.png\n"
    assert stream.getvalue() == first + "\x1b[2F\x1b[J" + second + "… 2. p1 — queued\n"


@pytest.mark.parametrize(
    ("encoding", "shown"),
    [
        ("utf-8", "✔ 1. café — done → out/x.png\n"),
        ("cp1252", "? 1. café — done ? out/x.png\n"),  # a Windows console piped to a file
        ("latin-1", "? 1. café ? done ? out/x.png\n"),
        ("ascii", "? 1. caf? ? done ? out/x.png\n"),
    ],
)
def test_what_a_console_cannot_encode_becomes_a_question_mark(encoding: str, shown: str) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding)  # errors="strict", like sys.stdout
    TerminalDisplay(stream).write("✔ 1. café — done → out/x.png\n")

    assert raw.getvalue().decode(encoding) == shown
