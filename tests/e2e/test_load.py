"""The load test of issue 4: 20 users each send 5 jobs of 5 prompts at once (500 images), through the fake
Discord and a fake Stability that enforces a real rate limit, smaller than the default so that the
client-side limiter has to hold requests back. Every image arrives exactly once, nothing is paid for twice,
nobody draws a 429, and the bot keeps nothing of a job once it is delivered.

Memory is checked by what stays alive, not by tracemalloc: tracing every allocation makes this run ~2.5x
slower and pushes the bot's answers towards Discord's 3-second deadline. The peak RSS of the bot under the
same load, in its own process, is a figure of `bench/load.py`.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.storage.images import slug
from cogs.imagine.delivery import DeliveryConfig
from tests.e2e.conftest import Harness
from tests.fakes.fake_discord import InteractionRecord, MessageRecord

pytestmark = pytest.mark.e2e

USERS, JOBS_EACH, PROMPTS_EACH = 20, 5, 5
IMAGES = USERS * JOBS_EACH * PROMPTS_EACH
LIMIT, WINDOW = 100, 1.0  # the fake's and the bot's: 500 requests need five windows
LATENCY = 0.05
# What a job is made of in the bot; once every job is delivered, none of them may be left.
PER_JOB = frozenset({"JobHandle", "JobProgress", "GenerationState", "JobDelivery", "ProgressMessage", "View"})
PER_JOB_TASKS = ("job-", "progress-", "upload-")


@pytest.fixture
async def loaded(harness_factory: Callable[..., Any]) -> AsyncIterator[Harness]:
    """The e2e harness with the fake Stability's rate limit switched on, and the bot's matching."""
    env = {
        "GENERATION_TIMEOUT": "30",
        "MAX_PROMPTS": str(PROMPTS_EACH),
        "MAX_CONCURRENT_GENERATIONS": str(LIMIT + LIMIT // 2),  # the limiter binds, not the slots
        "RATE_LIMIT_REQUESTS": str(LIMIT),
        "RATE_LIMIT_WINDOW": str(WINDOW),
        "USER_MAX_ACTIVE_JOBS": str(JOBS_EACH),
    }
    async with harness_factory(
        env=env, delivery=DeliveryConfig(), latency=LATENCY, rate_limit=(LIMIT, WINDOW)
    ) as harness:
        yield harness


def prompt(user: int, job: int, index: int) -> str:
    return f"user {user:02d} job {job} prompt {index}"


async def push_everything(h: Harness) -> list[tuple[InteractionRecord, list[str]]]:
    """Every user's five /imagine at once; returns each interaction with the prompts it asked for."""
    users = [h.discord.add_user(f"user{u:02d}") for u in range(USERS)]
    asked = [
        (user.id, [prompt(u, j, i) for i in range(PROMPTS_EACH)])
        for u, user in enumerate(users)
        for j in range(JOBS_EACH)
    ]
    pushed = await asyncio.gather(
        *(h.discord.push_slash_command("imagine", {"prompts": ", ".join(p)}, user_id=uid) for uid, p in asked)
    )
    return [(record, prompts) for record, (_, prompts) in zip(pushed, asked, strict=True)]


def summary_shown(message: MessageRecord | None) -> bool:
    """The final summary, as `Harness.finished` knows it."""
    return message is not None and "\n**" in message.content and "delivered" in message.content


async def settled(h: Harness, pushed: list[InteractionRecord], timeout: float) -> None:
    """Until every job shows its summary, or was refused or never answered: fail fast, say why below."""

    def over(record: InteractionRecord) -> bool:
        original = h.discord.interaction(record.id).original
        return (
            summary_shown(original)
            or record.late_callback_at is not None
            or bool(original and original.deleted)
        )

    await h.discord.wait_for(lambda _: all(over(r) for r in pushed), timeout, what="every job's summary")


def posted_images(h: Harness) -> Counter[tuple[int | None, str]]:
    """How many times each (interaction, file) was posted; a file's name carries its prompt."""
    return Counter(
        (message.interaction_id, attachment.filename)
        for message in h.discord.messages.values()
        if not message.deleted
        for attachment in message.attachments
    )


def alive(names: frozenset[str]) -> Counter[str]:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects() if type(o).__name__ in names)


async def test_500_images_from_20_users_at_once_arrive_exactly_once(loaded: Harness) -> None:
    h = loaded
    # Earlier tests in the same run may leave a few such objects behind (held by their reports): only what
    # this load adds counts.
    before = alive(PER_JOB)
    h.discord.enable_edit_rate_limit(5, 5.0)
    started = time.monotonic()
    jobs = await push_everything(h)
    pushed = [record for record, _ in jobs]
    await settled(h, pushed, timeout=60)
    makespan = time.monotonic() - started

    # Every job was acknowledged in time, admitted, and ends with its summary: all five images delivered.
    assert [r.late_callback_at for r in pushed] == [None] * len(pushed), "acknowledged after Discord's 3 s"
    refused = [f.content for r in pushed for f in h.discord.interaction(r.id).followups if f.ephemeral]
    assert refused == [], f"{len(refused)} jobs refused"
    for record in pushed:
        final = h.discord.interaction(record.id).original
        assert final is not None and f"{PROMPTS_EACH} of {PROMPTS_EACH} images delivered" in final.content
    # Every prompt has exactly one image, posted to its own interaction: none missing, none twice.
    expected = Counter(
        (record.id, f"{i + 1:02d}-{slug(text)}.png")
        for record, prompts in jobs
        for i, text in enumerate(prompts)
    )
    assert posted_images(h) == expected

    # One API call per image (no credit spent twice), and no 429 from either side.
    assert Counter(r.status for r in h.stability.requests) == {200: IMAGES}
    assert sorted(r.prompt or "" for r in h.stability.requests) == sorted(p for _, ps in jobs for p in ps)
    assert h.discord.rate_limited_count == 0
    assert [c.route for c in h.discord.rest_calls if c.status == 429] == []
    # The limiter was in play: at LIMIT per WINDOW the fake cannot have received 500 requests any faster.
    received = [r.received_at for r in h.stability.requests]
    assert max(received) - min(received) >= (IMAGES // LIMIT - 1) * WINDOW - 0.01

    # Memory bounded: nothing of a delivered job stays in the bot.
    cog: Any = h.bot.get_cog("ImagineCog")  # not isinstance: load_extension imported the module afresh
    runner = h.services.runner
    async with asyncio.timeout(5):  # a job is forgotten just after its summary went out
        await asyncio.gather(*(d.wait_delivered() for d in list(cog.deliveries.values())))
    assert cog.deliveries == {}
    assert runner.jobs == {}
    assert runner.slots.busy == 0 and runner.slots.waiting() == []
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(PER_JOB_TASKS)] == []
    assert alive(PER_JOB) - before == Counter()
    print(f"\n{IMAGES} images from {len(jobs)} jobs in {makespan:.2f}s")
