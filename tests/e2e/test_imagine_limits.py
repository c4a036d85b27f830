"""/imagine under the limits and settings of issue 5: quotas, caps, server defaults, spoilers, DMs, and
each waiting prompt's place in the fair queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.quotas import GuildSettings
from tests.e2e.conftest import Harness

pytestmark = pytest.mark.e2e


async def refusal(h: Harness, prompts: str, **kw: Any) -> str:
    """Push /imagine and return the private answer that refuses it (the "thinking" message is gone)."""
    pushed = await h.discord.push_slash_command("imagine", {"prompts": prompts}, **kw)

    def answered(f: Any) -> bool:
        record = f.interaction(pushed.id)
        return any(m.ephemeral for m in record.followups) or bool(
            record.original and record.original.ephemeral
        )

    await h.discord.wait_for(answered, what="a private refusal")
    record = h.discord.interaction(pushed.id)
    reply = next(m for m in [*record.followups, record.original] if m is not None and m.ephemeral)
    assert record.original is None or record.original.deleted or record.original is reply
    return reply.content


async def test_a_daily_quota_refuses_before_anything_is_sent(harness_factory: Callable[..., Any]) -> None:
    async with harness_factory(env={"USER_DAILY_IMAGE_QUOTA": "3"}) as h:
        await h.finished(await h.imagine("a, b"))
        sent = len(h.stability.requests)
        text = await refusal(h, "c, d")
        assert "daily" in text.lower() and "<t:" in text, text
        assert len(h.stability.requests) == sent, "nothing billed for a refused job"
        await h.finished(await h.imagine("c"))  # exactly what is left still goes


async def test_active_job_cap(harness_factory: Callable[..., Any]) -> None:
    async with harness_factory(env={"USER_MAX_ACTIVE_JOBS": "1"}) as h:
        h.stability.hold()
        first = await h.imagine("slow")
        await h.stability.wait_requests(1)
        text = await refusal(h, "another")
        assert "running" in text.lower() or "active" in text.lower(), text
        h.stability.release()
        await h.finished(first)


async def test_server_defaults_and_spoilers_apply(harness: Harness) -> None:
    await harness.services.guild_settings.put(
        harness.discord.guild_id,
        GuildSettings(default_model="sd3.5-flash", default_style="anime", spoilers=True),
    )
    pushed = await harness.imagine("a fox")
    final = await harness.finished(pushed)
    (request,) = harness.stability.requests
    assert (request.form["model"], request.form["style_preset"]) == ("sd3.5-flash", "anime")
    assert "SD 3.5 Flash" in final.content
    (image,) = harness.images(pushed)
    assert image.attachments[0].filename.startswith("SPOILER_")


async def test_a_server_can_lower_max_prompts(harness: Harness) -> None:
    await harness.services.guild_settings.put(harness.discord.guild_id, GuildSettings(max_prompts=2))
    text = await refusal(harness, "a, b, c")
    assert "the limit is 2" in text
    assert harness.stability.requests == []


async def test_imagine_works_in_a_direct_message(harness: Harness) -> None:
    pushed = await harness.discord.push_slash_command("imagine", {"prompts": "a dm fox, a dm owl"}, dm=True)
    final = await harness.finished(pushed)
    assert "2 of 2 images delivered" in final.content
    assert len(harness.images(pushed)) == 2


async def test_waiting_prompts_show_their_place_in_line(harness_factory: Callable[..., Any]) -> None:
    async with harness_factory(env={"MAX_CONCURRENT_GENERATIONS": "1"}) as h:
        h.stability.hold()
        pushed = await h.imagine("first, second, third")

        def places_shown(f: Any) -> bool:
            original = f.interaction(pushed.id).original
            return original is not None and "queued (#1 in line)" in original.content

        await h.discord.wait_for(places_shown, what="queue places in the progress message")
        original = h.discord.interaction(pushed.id).original
        assert original is not None and "queued (#2 in line)" in original.content
        h.stability.release()
        await h.finished(pushed)
