"""What /jobs, /job and /usage write, and how typed job ids are read: pure functions, no Discord."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine.errors import Failure, FailureReason
from bot.engine.models import GenerationStatus, ImageFile, JobStatus, Place, Requester
from bot.engine.options import GenerationOptions
from bot.quotas import Limits, Usage
from bot.storage.jobs import Delivery, GenerationRecord, JobRecord
from cogs.common import MESSAGE_LIMIT, fit, message_link, parse_job_id
from cogs.history import job_text, jobs_text, usage_text

T0 = 1_700_000_000.0
IN_GUILD = Place(10, 20)


def record(*prompts: str, place: Place = IN_GUILD, status: JobStatus = JobStatus.SUCCEEDED) -> JobRecord:
    generations = tuple(
        GenerationRecord(
            "abc23456",
            i,
            p,
            100 + i,
            GenerationStatus.SUCCEEDED,
            T0,
            image=ImageFile(Path("x.png"), "png", 1, 1, 1, 100 + i),
            posted_message_id=9_000 + i,
        )
        for i, p in enumerate(prompts)
    )
    return JobRecord(
        "abc23456", Requester("1", "Alice"), place, GenerationOptions(), len(prompts), status, T0, T0, T0,
        3.0 * len(prompts), Delivery(), generations,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("abc23456", "abc23456"),
        ("  ABC23456 ", "abc23456"),
        ("`abc23456`", "abc23456"),
        ("#abc23456", "abc23456"),
        ("abc2345", None),
        ("abc234567", None),
        ("abc 3456", None),
        ("abc-3456", None),
        ("abcdéfgh", None),
    ],
)
def test_typed_job_ids(typed: str, expected: str | None) -> None:
    assert parse_job_id(typed) == expected


def test_message_links_point_at_a_server_or_direct_messages() -> None:
    assert message_link(1, 2, 3) == "https://discord.com/channels/1/2/3"
    assert message_link(None, 2, 3) == "https://discord.com/channels/@me/2/3"
    assert message_link(1, 2, None) is None


def test_fit_leaves_out_what_does_not_fit_and_says_how_much() -> None:
    text = fit(["head"], [f"line {i} " + "x" * 40 for i in range(10)], limit=200)
    assert len(text) <= 200 and text.startswith("head\nline 0") and text.endswith("more")
    assert fit(["head"], ["a", "b"], limit=200) == "head\na\nb"


def test_a_job_of_25_long_prompts_fits_in_one_message() -> None:
    job = record(*(f"prompt {i} " + "very long words " * 40 for i in range(25)))
    text = job_text(job, show_requester=True)
    assert len(text) <= MESSAGE_LIMIT
    assert text.startswith("**Job `abc23456`** by Alice · <t:1700000000:f> · ✅ done")
    assert "[image](https://discord.com/channels/10/20/9000)" in text


def test_a_job_line_per_status() -> None:
    job = record("made", "failed", "waiting", "not posted", place=Place(None, 5), status=JobStatus.RUNNING)
    made, failed, waiting, unposted = job.generations
    failure = Failure(FailureReason.MODERATION, "blocked by *moderation*")
    failed = GenerationRecord(failed.job_id, 1, "failed", 101, GenerationStatus.FAILED, T0, failure=failure)
    waiting = GenerationRecord(waiting.job_id, 2, "waiting", 102, GenerationStatus.QUEUED, T0)
    unposted = GenerationRecord(unposted.job_id, 3, "not posted", 103, GenerationStatus.SUCCEEDED, T0)
    job = JobRecord(**{**job.__dict__, "generations": (made, failed, waiting, unposted)})
    lines = job_text(job, show_requester=False).splitlines()
    assert lines[0] == "**Job `abc23456`** · <t:1700000000:f> · ⏳ running"
    assert lines[1] == "Stable Image Core · 1:1 · estimated 12 credits"
    assert lines[2:] == [
        "✅ 1. made — seed 100 — [image](https://discord.com/channels/@me/5/9000)",
        "❌ 2. failed — seed 101 — failed: blocked by \\*moderation\\*",
        "⏳ 3. waiting — seed 102 — queued",
        "✅ 4. not posted — seed 103 — made, not posted yet",
    ]


def test_jobs_list_escapes_prompts_and_fits() -> None:
    jobs = [record("**bold** @everyone " + "word " * 100) for _ in range(10)]
    text = jobs_text(jobs)
    assert len(text) <= MESSAGE_LIMIT and text.count("`abc23456`") == 10
    assert "\\*\\*bold\\*\\*" in text


def test_usage_over_a_lowered_quota_shows_nothing_left() -> None:
    limits = Limits(10, 2, 5, 0, 0)
    text = usage_text(Usage(1, 8, 24.0), limits, in_guild=True, now=T0)
    assert "You: 8 images, 24 credits — 0 images left of 5" in text
    assert "This server: 0 images, 0 credits — no daily limit; no credit budget" in text
