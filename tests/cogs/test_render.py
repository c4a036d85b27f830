from pathlib import Path

import pytest

from bot.engine.errors import Failure, FailureReason
from bot.engine.events import (
    GenerationFailed,
    GenerationStarted,
    GenerationSucceeded,
    JobFinished,
    JobStarted,
    PlannedGeneration,
)
from bot.engine.models import ImageFile, JobRequest, JobStatus, Place, Requester
from bot.engine.options import GenerationOptions
from bot.engine.progress import JobProgress
from cogs.imagine import render


def job(*prompts: str) -> JobProgress:
    request = JobRequest(Requester("1", "u"), Place(1, 2), prompts, GenerationOptions(model="sd3.5-flash"))
    planned = tuple(PlannedGeneration(i, p, 100 + i) for i, p in enumerate(prompts))
    return JobProgress.start(JobStarted("abc23456", request, planned, at=0.0, wall_time=1_700_000_000))


def image(seed: int = 100) -> ImageFile:
    return ImageFile(Path("x.png"), "png", 1024, 768, 1234, seed)


def test_progress_shows_every_state_and_totals() -> None:
    p = job("a red fox", "a castle, at dusk", "robotic dog", "blocked")
    p = p.apply(GenerationStarted("abc23456", 0, 1.0)).apply(GenerationSucceeded("abc23456", 0, image(), 3.5))
    p = p.apply(GenerationStarted("abc23456", 1, 2.0))
    p = p.apply(GenerationStarted("abc23456", 3, 2.0))
    p = p.apply(GenerationFailed("abc23456", 3, Failure.of(FailureReason.MODERATION), 2.5))
    text = render.progress_text(p, now=10.0, wall_now=1_700_000_010)
    lines = text.splitlines()
    assert lines[0] == "**Imagining 4 prompts** · SD 3.5 Flash · 1:1 · job `abc23456`"
    assert lines[1] == "✅ 1. a red fox — done in 2.5s"
    assert lines[2] == "🎨 2. a castle, at dusk — generating (started <t:1700000002:R>)"
    assert lines[3] == "⏳ 3. robotic dog — queued"
    assert lines[4] == "❌ 4. blocked — failed: blocked by content moderation: rephrase the prompt"
    assert lines[5] == "-# 1 done · 1 generating · 1 queued · 1 failed"


def test_running_line_does_not_change_as_time_passes() -> None:
    # Discord renders <t:…:R> live, so the message needs no edit just because a second went by.
    p = job("a").apply(GenerationStarted("abc23456", 0, 1.0))
    assert render.progress_text(p, 5.0, 1_700_000_005) == render.progress_text(p, 9.0, 1_700_000_009)


@pytest.mark.parametrize(
    ("outcomes", "status", "summary"),
    [
        (["ok", "ok"], JobStatus.SUCCEEDED, "**Done**: 2 of 2 images delivered in 4.0s."),
        (
            ["ok", "bad"],
            JobStatus.PARTIAL,
            "**Done, with failures**: 1 of 2 images delivered, 1 failed in 4.0s.",
        ),
        (["bad", "bad"], JobStatus.FAILED, "**Failed**: 0 of 2 images delivered, 2 failed in 4.0s."),
    ],
)
def test_summary(outcomes: list[str], status: JobStatus, summary: str) -> None:
    p = job("a", "b")
    for i, outcome in enumerate(outcomes):
        event = (
            GenerationSucceeded("abc23456", i, image(), 2.0)
            if outcome == "ok"
            else GenerationFailed("abc23456", i, Failure.of(FailureReason.TIMED_OUT), 2.0)
        )
        p = p.apply(GenerationStarted("abc23456", i, 0.0)).apply(event)
    p = p.apply(JobFinished("abc23456", status, 4.0))
    text = render.progress_text(p, 50.0, 0)
    assert text.startswith("**Imagined 2 prompts**")
    assert text.splitlines()[-1] == summary


def test_markdown_in_prompts_is_escaped() -> None:
    text = render.progress_text(job("**bold** _it_ `code` @everyone <@123>"), 0, 0)
    assert r"\*\*bold\*\* \_it\_ \`code\`" in text


def test_progress_fits_discord_with_25_huge_prompts() -> None:
    p = job(*[("**" + "word " * 2000)[:10_000] for _ in range(25)])
    text = render.progress_text(p, 0, 0)
    assert len(text) <= 2000
    assert len(text.splitlines()) == 27, "every prompt keeps its own line"


def test_caption_has_prompt_seed_model_and_fits() -> None:
    p = job("a red fox", "x" * 10_000)
    p = p.apply(GenerationSucceeded("abc23456", 0, image(seed=77), 1.0))
    text = render.caption(p, p.generations[0])
    assert text == "**a red fox**\n-# seed `77` · SD 3.5 Flash · 1024×768 · job `abc23456` (1/2)"
    assert text.endswith(render.caption_marker("abc23456", 0, 2)), "how recovery finds it in the channel"
    assert len(render.caption(p, p.generations[1])) <= 2000


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("a b c d e f g h", 8, "a b c…"),
        ("abcdefghij", 5, "abcd…"),
        ("  x \n y ", 9, "x y"),
    ],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert render.shorten(text, limit) == expected


def test_missing_permissions_names_them_and_says_how_to_fix() -> None:
    text = render.missing_permissions_text(["Attach Files", "Embed Links"])
    assert "**Attach Files**, **Embed Links** permissions" in text and "Roles" in text
