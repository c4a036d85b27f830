"""Crash recovery: the real bot, killed mid-job and started again on the same data, finishes every job once.

The bot runs as a child process (`tests/fakes/bot_process.py`) so it can really be SIGKILLed; the fake
Discord and the fake Stability API run in the test's loop and outlive it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app import open_services
from bot.client import ImagineBot
from bot.config import Settings
from bot.engine.events import PlannedGeneration
from bot.engine.models import GenerationStatus, ImageFile, JobRequest, JobStatus, Place, Requester
from bot.engine.options import GenerationOptions
from bot.storage.database import Database
from bot.storage.jobs import JobRepository
from cogs.imagine.delivery import DeliveryConfig
from cogs.imagine.destination import Destination
from tests.e2e.conftest import Harness
from tests.fakes import images
from tests.fakes.bot_process import BotProcess
from tests.fakes.fake_discord import FakeDiscord, MessageRecord
from tests.fakes.fake_discord.bodies import Body, Upload
from tests.fakes.stability import FakeStability, Hang

pytestmark = pytest.mark.e2e

API_KEY = "sk-recovery-secret"


def bot_env(fake: FakeDiscord, stability: FakeStability, data: Path, **extra: str) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": fake.token,
        "STABILITY_API_KEY": API_KEY,
        "STABILITY_API_BASE": stability.base_url,
        "DATA_DIR": str(data),
        "DISCORD_DEV_GUILD_ID": str(fake.guild_id),
        "GENERATION_TIMEOUT": "30",
        "LOG_LEVEL": "INFO",
        **extra,
    }


def images_of(fake: FakeDiscord, prompt: str) -> list[MessageRecord]:
    """Every live message carrying the image of `prompt` (its caption starts with the prompt in bold)."""
    return [
        m
        for m in fake.messages.values()
        if m.attachments and not m.deleted and m.content.splitlines()[0] == f"**{prompt}**"
    ]


def requests_for(stability: FakeStability, prompt: str) -> int:
    return sum(1 for r in stability.requests if r.prompt == prompt)


async def wait_summary(fake: FakeDiscord, interaction_id: int, timeout: float = 10.0) -> str:
    def summarised(f: FakeDiscord) -> bool:
        original = f.interaction(interaction_id).original
        return original is not None and "delivered" in original.content

    await fake.wait_for(summarised, timeout, what="the final summary")
    original = fake.interaction(interaction_id).original
    assert original is not None
    return original.content


async def test_a_killed_bot_finishes_every_job_at_restart_without_repeating_work(tmp_path: Path) -> None:
    prompts = ["alpha", "bravo", "slow charlie", "slow delta"]
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        stability.on_prompt("slow", Hang())
        env = bot_env(fake, stability, tmp_path / "data")
        async with BotProcess(fake, env, cwd=tmp_path) as first:
            await first.ready()
            pushed = await fake.push_slash_command("imagine", {"prompts": ", ".join(prompts)})
            # Logged right after the message id is recorded: the two quick images are posted for good.
            await first.wait_log(": posted image", count=2)
            await stability.wait_requests(4)
            first.kill()
            assert await first.wait() == -9
        stability.clear_script()  # the held prompts succeed this time

        async with BotProcess(fake, env, cwd=tmp_path) as second:
            await second.ready()
            summary = await wait_summary(fake, pushed.id)
            second.terminate()
            assert await second.wait() == 0

    assert "**Done**: 4 of 4 images delivered" in summary
    assert {p: len(images_of(fake, p)) for p in prompts} == dict.fromkeys(prompts, 1)
    # The token was still valid: the restarted bot answered through the same interaction's webhook.
    resumed = [*images_of(fake, "slow charlie"), *images_of(fake, "slow delta")]
    assert [(m.origin, m.interaction_id) for m in resumed] == [("followup", pushed.id)] * 2
    original = fake.interaction(pushed.id).original
    assert original is not None
    assert original.edits[-1].route == "PATCH /webhooks/{application_id}/{token}/messages/{message_id}"
    assert {p: requests_for(stability, p) for p in prompts} == {
        "alpha": 1,  # made before the crash: posted, never asked for again
        "bravo": 1,
        "slow charlie": 2,  # cut by the crash, resumed with the same seed
        "slow delta": 2,
    }
    seeds = {r.form["seed"] for r in stability.requests if r.form and r.prompt == "slow charlie"}
    assert len(seeds) == 1, "a resumed generation keeps its seed"
    async with Database(tmp_path / "data" / "imagine.sqlite3") as conn:
        (job,) = await JobRepository(conn).recent_jobs(str(fake.user_id))
    assert job.status is JobStatus.SUCCEEDED
    assert all(g.posted_message_id is not None for g in job.generations)


async def test_a_job_older_than_the_resume_window_is_reported_interrupted(tmp_path: Path) -> None:
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        stability.on_prompt("slow", Hang())
        data = tmp_path / "data"
        async with BotProcess(fake, bot_env(fake, stability, data), cwd=tmp_path) as first:
            await first.ready()
            pushed = await fake.push_slash_command("imagine", {"prompts": "quick one, slow one"})
            await first.wait_log(": posted image")
            await stability.wait_requests(2)
            first.kill()
            await first.wait()
        stability.clear_script()

        env = bot_env(fake, stability, data, RESUME_WINDOW_MINUTES="0")
        async with BotProcess(fake, env, cwd=tmp_path) as second:
            await second.ready()
            summary = await wait_summary(fake, pushed.id)
            second.terminate()
            assert await second.wait() == 0

    assert "❌ 2. slow one — failed: interrupted: the bot restarted while this ran" in summary
    assert "**Done, with failures**: 1 of 2 images delivered, 1 failed" in summary
    assert requests_for(stability, "slow one") == 1, "an interrupted generation is not run again"
    assert len(images_of(fake, "quick one")) == 1
    async with Database(data / "imagine.sqlite3") as conn:
        (job,) = await JobRepository(conn).recent_jobs(str(fake.user_id))
    assert job.status is JobStatus.PARTIAL
    failure = job.generations[1].failure
    assert failure is not None and failure.reason == "interrupted"


# -- an image made but not posted before the crash (state written directly) -----------------------------


@dataclass
class Seeded:
    job_id: str
    progress_message_id: int


async def seed_unposted_job(fake: FakeDiscord, data: Path) -> Seeded:
    """A job as a crash leaves it: two images made, the first posted, the second on disk only; the
    interaction token long expired; the progress message still says "Imagining"."""
    job_id, seeds = "r3c0v3ry", (11, 22)
    progress = fake.create_message(
        fake.channel_id, "interaction_original", Body({"content": "**Imagining 2 prompts** · before"})
    )
    request = JobRequest(
        Requester(str(fake.user_id), "Alice"),
        Place(fake.guild_id, fake.channel_id),
        ("first prompt", "second prompt"),
        GenerationOptions(),
    )
    created = time.time() - 20 * 60  # older than the token, within the resume window
    planned = [
        PlannedGeneration(i, p, s) for i, (p, s) in enumerate(zip(request.prompts, seeds, strict=True))
    ]
    async with Database(data / "imagine.sqlite3") as conn:
        repo = JobRepository(conn)
        await repo.create_job(job_id, request, planned, created)
        for index, seed in enumerate(seeds):
            path = data / "images" / job_id / f"{index + 1:02d}-{seed}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(images.png_bytes())
            image = ImageFile(path, "png", 64, 64, path.stat().st_size, seed)
            await repo.mark_generation_started(job_id, index)
            await repo.mark_generation_succeeded(job_id, index, image)
        await repo.mark_posted(job_id, 0, 4242)
        await repo.set_delivery(job_id, "dead-token", created + 15 * 60, fake.channel_id, progress.id)
    return Seeded(job_id, progress.id)


@asynccontextmanager
async def bot_in_process(
    fake: FakeDiscord, stability: FakeStability, data: Path
) -> AsyncIterator[ImagineBot]:
    settings = Settings.from_env(bot_env(fake, stability, data))
    async with open_services(settings) as services:
        bot = ImagineBot(services, delivery=DeliveryConfig(min_edit_interval=0.1))
        async with fake.running(bot):
            yield bot


async def test_an_image_made_but_not_posted_before_the_crash_is_posted_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        seeded = await seed_unposted_job(fake, data)
        progress = fake.message(seeded.progress_message_id)
        async with bot_in_process(fake, stability, data):
            await fake.wait_for(lambda f: "delivered" in progress.content, what="the summary")
            (posted,) = images_of(fake, "second prompt")
        messages_after_first_start = len(fake.messages)
        async with bot_in_process(fake, stability, data):  # a second restart finds nothing left to do
            pass

    assert images_of(fake, "first prompt") == [], "posted before the crash: not again"
    assert posted.origin == "channel", "the recorded token had expired: the channel carries on"
    assert len(fake.messages) == messages_after_first_start
    assert "**Done**: 2 of 2 images delivered" in progress.content
    assert progress.edits[-1].route.startswith("PATCH /channels/")
    assert stability.requests == [], "nothing is generated again"
    async with Database(data / "imagine.sqlite3") as conn:
        job = await JobRepository(conn).get_job(seeded.job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED
    assert [g.status for g in job.generations] == [GenerationStatus.SUCCEEDED] * 2
    assert [g.posted_message_id for g in job.generations] == [4242, posted.id]


# -- an image posted just before the crash, but not recorded as posted --------------------------------------

HISTORY = "GET /channels/{channel_id}/messages"


def post_before_the_crash(fake: FakeDiscord, seeded: Seeded) -> MessageRecord:
    """The second image as the killed bot had posted it, plus a user's look-alike the bot must not take."""
    marker = f"job `{seeded.job_id}` (2/2)"
    png = Upload(0, "02-second-prompt.png", images.png_bytes(), "image/png")
    fake.create_message(
        fake.channel_id, "channel", Body({"content": f"was it {marker}"}, (png,)), author=fake.user_id
    )
    caption = f"**second prompt**\n-# seed `22` · SD 3.5 Flash · 64×64 · {marker}"
    return fake.create_message(fake.channel_id, "channel", Body({"content": caption}, (png,)))


async def test_an_image_posted_but_not_recorded_before_the_crash_is_found_not_posted_again(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        seeded = await seed_unposted_job(fake, data)
        before_crash = post_before_the_crash(fake, seeded)
        progress = fake.message(seeded.progress_message_id)
        async with bot_in_process(fake, stability, data):
            await fake.wait_for(lambda f: "delivered" in progress.content, what="the summary")

    assert images_of(fake, "second prompt") == [before_crash]
    assert fake.calls("POST /channels/*/messages") == [], "nothing posted again"
    assert "**Done**: 2 of 2 images delivered" in progress.content
    (history,) = fake.calls(HISTORY)
    assert history.query["limit"] == "100" and "after" in history.query
    async with Database(data / "imagine.sqlite3") as conn:
        job = await JobRepository(conn).get_job(seeded.job_id)
    assert job is not None
    assert [g.posted_message_id for g in job.generations] == [4242, before_crash.id]


async def test_without_read_message_history_the_image_is_posted_as_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.imagine")
    data = tmp_path / "data"
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        seeded = await seed_unposted_job(fake, data)
        before_crash = post_before_the_crash(fake, seeded)
        fake.deny_history(fake.channel_id)
        progress = fake.message(seeded.progress_message_id)
        async with bot_in_process(fake, stability, data):
            await fake.wait_for(lambda f: "delivered" in progress.content, what="the summary")
            pushed = await fake.push_slash_command("imagine", {"prompts": "after the restart"})
            await wait_summary(fake, pushed.id)

    (again,) = [m for m in images_of(fake, "second prompt") if m is not before_crash]
    assert again.origin == "channel", "posted once more: a duplicate beats a lost image"
    assert "**Done**: 2 of 2 images delivered" in progress.content
    assert len(images_of(fake, "after the restart")) == 1, "the bot keeps working"
    assert [c.status for c in fake.calls(HISTORY)] == [403], "read for the recovered job only"
    assert f"job {seeded.job_id}: could not read channel {fake.channel_id}" in caplog.text
    async with Database(data / "imagine.sqlite3") as conn:
        job = await JobRepository(conn).get_job(seeded.job_id)
    assert job is not None
    assert [g.posted_message_id for g in job.generations] == [4242, again.id]


async def test_a_fresh_job_does_not_read_the_channel(harness: Harness) -> None:
    pushed = await harness.imagine("a cat, a dog")
    await harness.finished(pushed)
    assert len(harness.images(pushed)) == 2
    assert harness.discord.calls(HISTORY) == []


async def test_syncing_commands_recovers_nothing(tmp_path: Path) -> None:
    from bot.client import sync_commands

    data = tmp_path / "data"
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        seeded = await seed_unposted_job(fake, data)
        messages_before = len(fake.messages)
        assert await sync_commands(Settings.from_env(bot_env(fake, stability, data))) == 0
    assert len(fake.messages) == messages_before
    async with Database(data / "imagine.sqlite3") as conn:
        job = await JobRepository(conn).get_job(seeded.job_id)
    assert job is not None and job.status is JobStatus.RUNNING, "left for the bot itself to recover"


async def test_a_recorded_token_reaches_the_same_interaction_again(harness: Harness) -> None:
    pushed = await harness.imagine("a cat")
    await harness.finished(pushed)
    (job,) = await harness.services.jobs.recent_jobs(str(harness.discord.user_id))
    assert job.delivery.interaction_token == pushed.token
    original = harness.discord.interaction(pushed.id).original
    assert original is not None and job.delivery.progress_message_id == original.id

    destination = Destination.for_record(harness.bot, job, DeliveryConfig())
    assert destination.use_interaction()
    assert await destination.tell_requester("only you can see this") == "ephemeral"
    (notice,) = [m for m in harness.discord.interaction(pushed.id).followups if m.ephemeral]
    assert notice.content == "only you can see this"
