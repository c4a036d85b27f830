"""/jobs, /job, /usage and /forget-me end to end: jobs made through /imagine, then looked at and deleted."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest

from bot.storage.jobs import JobRecord
from cogs.history import HistoryCog
from tests.e2e.conftest import Harness
from tests.fakes.fake_discord import MessageRecord
from tests.fakes.fake_discord.payloads import DEFAULT_PERMISSIONS
from tests.fakes.stability import Status

pytestmark = pytest.mark.e2e

MANAGE_GUILD = 1 << 5
NO_PINGS = {"parse": []}


async def answer(h: Harness, name: str, options: dict[str, Any] | None = None, **kw: Any) -> MessageRecord:
    """Push a slash command and return its reply, which must be private and ping nobody."""
    pushed = await h.discord.push_slash_command(name, options or {}, **kw)
    await h.discord.wait_for(lambda f: f.interaction(pushed.id).original is not None, what=f"/{name}")
    reply = h.discord.interaction(pushed.id).original
    assert reply is not None and reply.ephemeral and reply.allowed_mentions == NO_PINGS
    return reply


async def make_jobs(h: Harness, *prompts: str, user_id: int | None = None) -> list[JobRecord]:
    """One finished job per argument, by the default user or `user_id`; returns them newest first."""
    for text in prompts:
        pushed = await h.discord.push_slash_command("imagine", {"prompts": text}, user_id=user_id)
        await h.finished(pushed)
    return await h.services.jobs.recent_jobs(str(user_id or h.discord.user_id))


async def test_jobs_lists_your_recent_jobs_newest_first(harness: Harness) -> None:
    first, second = reversed(await make_jobs(harness, "a red fox, a *bold* owl", "<@123> castle"))
    reply = await answer(harness, "jobs")
    lines = reply.content.splitlines()
    assert lines[0].startswith("**Your recent jobs**")
    assert lines[1].startswith(f"`{second.id}` · <t:{int(second.created_at)}:R> · ✅ done · 1 prompt: ")
    assert lines[2] == (
        f"`{first.id}` · <t:{int(first.created_at)}:R> · ✅ done · 2 prompts: a red fox, a \\*bold\\* owl"
    )


async def test_jobs_without_any_says_how_to_make_one(harness: Harness) -> None:
    assert "You have no jobs yet" in (await answer(harness, "jobs")).content


async def test_job_shows_each_prompt_its_seed_failure_and_image_link(harness: Harness) -> None:
    harness.stability.on_prompt("forbidden", Status(403, {"name": "content_moderation", "errors": ["no"]}))
    pushed = await harness.imagine("a fine fox, forbidden thing")
    await harness.finished(pushed)
    (image,) = harness.images(pushed)
    (job,) = await harness.services.jobs.recent_jobs(str(harness.discord.user_id))
    fox, forbidden = job.generations

    reply = await answer(harness, "job", {"id": f"  {job.id.upper()} "})  # typed in capitals, with spaces
    text = reply.content
    assert text.startswith(f"**Job `{job.id}`** · <t:{int(job.created_at)}:f> · ⚠️ done, with failures")
    assert "Stable Image Core · 1:1 · estimated 6 credits" in text
    link = f"https://discord.com/channels/{harness.discord.guild_id}/{image.channel_id}/{image.id}"
    assert f"✅ 1. a fine fox — seed {fox.seed} — [image]({link})" in text
    assert f"❌ 2. forbidden thing — seed {forbidden.seed} — failed: blocked by content moderation" in text


@pytest.mark.parametrize("typed", ["zzzzzzzz", "abc", "`@everyone`", "<@123> **x**"])
async def test_an_unknown_job_id_gets_a_clear_answer(harness: Harness, typed: str) -> None:
    reply = await answer(harness, "job", {"id": typed})
    assert reply.content.startswith("No job with the id `")
    assert "/jobs" in reply.content and reply.content.count("`") % 2 == 0, "user text stays in a code span"


async def test_someone_else_cannot_see_your_job_but_a_server_manager_can(harness: Harness) -> None:
    (job,) = await make_jobs(harness, "a secret garden")
    bob = harness.discord.add_user("bob")

    denied = await answer(harness, "job", {"id": job.id}, user_id=bob.id)
    assert "someone else's" in denied.content and "secret garden" not in denied.content
    denied_in_dm = await answer(harness, "job", {"id": job.id}, user_id=bob.id, dm=True)
    assert "someone else's" in denied_in_dm.content

    manager = await answer(
        harness, "job", {"id": job.id}, user_id=bob.id, member_permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD
    )
    assert f"**Job `{job.id}`** by Alice" in manager.content and "secret garden" in manager.content


async def test_your_own_jobs_are_visible_in_direct_messages(harness: Harness) -> None:
    (job,) = await make_jobs(harness, "a lighthouse")
    assert job.id in (await answer(harness, "jobs", dm=True)).content
    reply = await answer(harness, "job", {"id": job.id}, dm=True)
    assert "a lighthouse" in reply.content and f"/channels/{harness.discord.guild_id}/" in reply.content


def midnight_after(seconds: float) -> int:
    day = datetime.datetime.fromtimestamp(seconds, datetime.UTC).date() + datetime.timedelta(days=1)
    return int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())


async def test_usage_shows_today_what_is_left_and_when_it_resets(harness_factory: Callable[..., Any]) -> None:
    env = {
        "USER_DAILY_IMAGE_QUOTA": "10",
        "GUILD_DAILY_IMAGE_QUOTA": "50",
        "GUILD_DAILY_CREDIT_BUDGET": "100",
    }
    async with harness_factory(env=env) as h:
        h.stability.on_prompt("forbidden", Status(403, {"name": "content_moderation", "errors": ["no"]}))
        (job,) = await make_jobs(h, "one, two, three, forbidden")
        reply = await answer(h, "usage")
        lines = reply.content.splitlines()
        assert (
            lines[0]
            == f"**Your usage today** · quotas reset <t:{midnight_after(job.created_at)}:R> (00:00 UTC)"
        )
        assert lines[1] == "You: 3 images, 9 credits — 7 images left of 10"  # the failed one is free
        assert lines[2] == "Jobs running: 0 of 2 allowed at once"
        assert lines[3] == "This server: 3 images, 9 credits — 47 images left of 50; 91 credits left of 100"

        in_dm = await answer(h, "usage", dm=True)
        assert "You: 3 images, 9 credits — 7 images left of 10" in in_dm.content
        assert "Server quotas don't apply here" in in_dm.content


async def test_usage_without_limits_says_so(harness: Harness) -> None:
    reply = await answer(harness, "usage")
    assert "You: 0 images, 0 credits — no daily limit" in reply.content
    assert "This server: 0 images, 0 credits — no daily limit; no credit budget" in reply.content


# --- /forget-me ----------------------------------------------------------------------------------------


def buttons(message: MessageRecord) -> dict[str, str]:
    return {c["label"]: c["custom_id"] for row in message.components for c in row["components"]}


async def press(h: Harness, message: MessageRecord, label: str, user_id: int | None = None) -> None:
    pushed = await h.discord.push_component(buttons(message)[label], message.id, user_id=user_id)
    await h.discord.wait_for(lambda f: f.interaction(pushed.id).acknowledged, what=f"{label} answered")


def image_dirs(h: Harness) -> set[str]:
    return {p.name for p in h.services.settings.images_dir.iterdir() if p.is_dir()}


async def test_forget_me_deletes_your_jobs_and_images_after_confirmation(harness: Harness) -> None:
    mine = await make_jobs(harness, "a fox, an owl", "a hare")
    bob = harness.discord.add_user("bob")
    (theirs,) = await make_jobs(harness, "bob's cat", user_id=bob.id)
    assert image_dirs(harness) == {mine[0].id, mine[1].id, theirs.id}

    question = await answer(harness, "forget-me")
    assert "deletes your 2 jobs and the 3 images" in question.content
    assert set(buttons(question)) == {"Delete everything", "Cancel"}

    await press(harness, question, "Delete everything", user_id=bob.id)  # not bob's to answer
    assert await harness.services.jobs.recent_jobs(str(harness.discord.user_id)) != []

    await press(harness, question, "Delete everything")
    await harness.discord.wait_for(lambda f: question.content.startswith("Done"), what="forget-me done")
    assert question.content == "Done: 2 jobs and their stored images deleted."
    assert question.components == []
    assert await harness.services.jobs.recent_jobs(str(harness.discord.user_id)) == []
    assert [await harness.services.jobs.get_job(j.id) for j in mine] == [None, None]
    assert image_dirs(harness) == {theirs.id}, "bob's job and images stay"
    assert await harness.services.jobs.get_job(theirs.id) is not None


async def test_someone_else_pressing_confirm_is_told_off(harness: Harness) -> None:
    await make_jobs(harness, "a fox")
    question = await answer(harness, "forget-me")
    bob = harness.discord.add_user("bob")
    pushed = await harness.discord.push_component(
        buttons(question)["Delete everything"], question.id, user_id=bob.id
    )
    await harness.discord.wait_for(lambda f: f.interaction(pushed.id).original is not None)
    told = harness.discord.interaction(pushed.id).original
    assert told is not None and told.ephemeral and "Only the person who asked" in told.content


async def test_cancel_deletes_nothing(harness: Harness) -> None:
    (job,) = await make_jobs(harness, "a fox")
    question = await answer(harness, "forget-me")
    await press(harness, question, "Cancel")
    assert question.content == "Cancelled: nothing was deleted." and question.components == []
    assert await harness.services.jobs.get_job(job.id) is not None
    assert image_dirs(harness) == {job.id}


async def test_no_answer_deletes_nothing(harness: Harness) -> None:
    (job,) = await make_jobs(harness, "a fox")
    # load_extension imports its own copy of the module: the class is not this test's HistoryCog.
    cog = harness.bot.get_cog("HistoryCog")
    assert cog is not None and type(cog).__name__ == HistoryCog.__name__
    cog.confirm_timeout = 0.3  # type: ignore[attr-defined]
    question = await answer(harness, "forget-me")
    await harness.discord.wait_for(lambda f: question.content.startswith("No answer"), what="timeout")
    assert question.content == "No answer: nothing was deleted." and question.components == []
    assert await harness.services.jobs.get_job(job.id) is not None
    assert image_dirs(harness) == {job.id}


async def test_forget_me_with_nothing_stored_asks_nothing(harness: Harness) -> None:
    reply = await answer(harness, "forget-me")
    assert "nothing to forget" in reply.content and reply.components == []


async def test_forget_me_waits_for_running_jobs(harness: Harness) -> None:
    harness.stability.hold()
    pushed = await harness.imagine("a slow fox")
    await harness.stability.wait_requests(1)
    reply = await answer(harness, "forget-me")
    assert "You have 1 job running" in reply.content and reply.components == []
    harness.stability.release()
    await harness.finished(pushed)


async def test_the_commands_work_in_servers_dms_and_as_a_user_app(harness: Harness) -> None:
    await answer(harness, "usage")  # the commands are synced before the first push is served
    synced = {c["name"]: c for c in harness.discord.guild_commands[harness.discord.guild_id]}
    for name in ("jobs", "job", "usage", "forget-me"):
        command = synced[name]
        assert command["description"]
        assert sorted(command.get("contexts") or []) == [0, 1, 2], name
        assert sorted(command.get("integration_types") or []) == [0, 1], name
    assert all(o["description"] for o in synced["job"]["options"])
