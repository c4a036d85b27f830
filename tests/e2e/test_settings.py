"""/imagine-settings end to end: only managers, every setting shown after each change, in force at once,
and still there after the bot restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_services
from bot.client import ImagineBot, sync_commands
from bot.config import Settings
from bot.quotas import GuildSettings
from cogs.imagine.delivery import DeliveryConfig
from tests.e2e.conftest import API_KEY, Harness
from tests.e2e.test_history import answer
from tests.fakes.fake_discord import FakeDiscord, MessageRecord
from tests.fakes.fake_discord.payloads import DEFAULT_PERMISSIONS, guild_channel
from tests.fakes.stability import FakeStability

pytestmark = pytest.mark.e2e

MANAGER = DEFAULT_PERMISSIONS | 1 << 5  # Manage Server
ADMIN = DEFAULT_PERMISSIONS | 1 << 3  # Administrator


async def settings(h: Harness, sub: str, options: dict[str, Any] | None = None, **kw: Any) -> MessageRecord:
    kw.setdefault("member_permissions", MANAGER)
    return await answer(h, "imagine-settings", options, subcommand=sub, **kw)


async def stored(h: Harness) -> GuildSettings:
    return await h.services.guild_settings.get(h.discord.guild_id)


@pytest.mark.parametrize(
    ("sub", "options"),
    [
        ("show", {}),
        ("channels", {"action": "clear"}),
        ("quotas", {"member_images": 0}),
        ("spoilers", {"enabled": True}),
        ("reset", {"setting": "everything"}),
    ],
)
async def test_members_without_manage_server_are_refused(
    harness: Harness, sub: str, options: dict[str, Any]
) -> None:
    reply = await settings(harness, sub, options, member_permissions=DEFAULT_PERMISSIONS)
    assert "Only members with the **Manage Server** permission" in reply.content
    assert await harness.services.guild_settings.get(harness.discord.guild_id) == GuildSettings()
    assert await harness.services.jobs.get_guild_settings(harness.discord.guild_id) == {}


async def test_show_gives_the_bot_defaults_for_a_new_server(harness: Harness) -> None:
    reply = await settings(harness, "show", member_permissions=ADMIN)
    assert reply.content.splitlines() == [
        "**Image settings for this server**",
        "Channels where /imagine works: every channel",
        "Prompts per command: at most 10 (bot default)",
        "Images per member per day: unlimited (bot default)",
        "Images for the whole server per day: unlimited (bot default)",
        "Daily credit budget: none (bot default)",
        "Default model: Stable Image Core (`core`) (bot default)",
        "Default style: none (bot default)",
        "Images posted as spoilers: no",
        "Daily figures reset at 00:00 UTC; 0 means unlimited.",
    ]


def channel_option(fake: FakeDiscord, index: int) -> dict[str, Any]:
    spec = fake.guilds[fake.guild_id].channels[index]
    data = {**guild_channel(spec, fake.guild_id), "permissions": str(DEFAULT_PERMISSIONS)}
    return {"resolved": {"channels": {str(spec.id): data}}, "id": spec.id}


async def test_allowed_channels_are_added_removed_and_cleared(harness: Harness) -> None:
    fake = harness.discord
    general, images = (c.id for c in fake.guilds[fake.guild_id].channels)
    here = await settings(harness, "channels", {"action": "add"})  # no channel: the one it is used in
    assert here.content.startswith("Saved; in force from now on.\n**Image settings for this server**")
    assert f"Channels where /imagine works: <#{general}>" in here.content

    other = channel_option(fake, 1)
    both = await settings(
        harness, "channels", {"action": "add", "channel": str(other["id"])}, resolved=other["resolved"]
    )
    assert f"Channels where /imagine works: <#{general}>, <#{images}>" in both.content
    assert (await stored(harness)).allowed_channel_ids == tuple(sorted((general, images)))

    removed = await settings(harness, "channels", {"action": "remove"})
    assert f"Channels where /imagine works: <#{images}>" in removed.content

    decision = await harness.services.quotas.admit("job00001", "u", fake.guild_id, (general,), 1, "core")
    assert not decision.allowed and f"<#{images}>" in decision.message, "in force at once for /imagine"

    cleared = await settings(harness, "channels", {"action": "clear"})
    assert "Channels where /imagine works: every channel" in cleared.content
    assert (await stored(harness)).allowed_channel_ids == ()


async def test_quotas_budget_and_prompt_limit_apply_at_once(harness: Harness) -> None:
    reply = await settings(
        harness, "quotas", {"member_images": 2, "server_images": 30, "credit_budget": 12.5}
    )
    assert "Images per member per day: 2 images\n" in reply.content
    assert "Images for the whole server per day: 30 images\n" in reply.content
    assert "Daily credit budget: 12.5 credits\n" in reply.content

    usage = await answer(harness, "usage")
    assert "— 2 images left of 2" in usage.content
    assert "30 images left of 30; 12.5 credits left of 12.5" in usage.content

    unlimited = await settings(harness, "quotas", {"member_images": 0})
    assert "Images per member per day: unlimited\n" in unlimited.content, "0 is the server's own: unlimited"
    assert "Images for the whole server per day: 30 images" in unlimited.content, "left as it was"

    too_many = await settings(harness, "max-prompts", {"count": 11})
    assert "at most 10 prompts" in too_many.content
    assert (await stored(harness)).max_prompts is None
    three = await settings(harness, "max-prompts", {"count": 3})
    assert "Prompts per command: at most 3 (the bot allows up to 10)" in three.content
    assert (await harness.services.quotas.limits_for(harness.discord.guild_id)).max_prompts == 3


async def test_defaults_spoilers_and_reset(harness: Harness) -> None:
    reply = await settings(harness, "defaults", {"model": "ultra", "style": "anime"})
    assert "Default model: Stable Image Ultra (`ultra`)\n" in reply.content
    assert "Default style: anime\n" in reply.content
    spoilers = await settings(harness, "spoilers", {"enabled": True})
    assert "Images posted as spoilers: yes" in spoilers.content
    assert await stored(harness) == GuildSettings(default_model="ultra", default_style="anime", spoilers=True)

    one = await settings(harness, "reset", {"setting": "default_style"})
    assert "Default style: none (bot default)" in one.content and "`ultra`" in one.content
    everything = await settings(harness, "reset", {"setting": "everything"})
    assert "Default model: Stable Image Core (`core`) (bot default)" in everything.content
    assert await stored(harness) == GuildSettings()


async def test_the_settings_command_is_for_server_managers_only(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        env = {"DISCORD_TOKEN": fake.token, "IMAGE_PROVIDER": "demo", "DATA_DIR": str(tmp_path)}
        assert await sync_commands(Settings.from_env(env)) == 0
    commands = {c["name"]: c for c in fake.global_commands}
    command = commands["imagine-settings"]
    assert int(command["default_member_permissions"]) == 1 << 5
    assert command["contexts"] == [0] and command["integration_types"] == [0]
    subcommands = {o["name"]: o for o in command["options"]}
    assert set(subcommands) == {"show", "channels", "max-prompts", "quotas", "defaults", "spoilers", "reset"}
    for sub in subcommands.values():
        assert sub["description"] and all(o["description"] for o in sub.get("options", []))
    for name in ("jobs", "job", "usage", "forget-me"):
        assert sorted(commands[name]["contexts"]) == [0, 1, 2]
        assert sorted(commands[name]["integration_types"]) == [0, 1]


@asynccontextmanager
async def bot_on(fake: FakeDiscord, stability: FakeStability, data_dir: Path) -> AsyncIterator[Harness]:
    """A bot on an existing fake Discord, so a second one sees the same server (same ids) after a restart."""
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": fake.token,
            "STABILITY_API_KEY": API_KEY,
            "STABILITY_API_BASE": stability.base_url,
            "DATA_DIR": str(data_dir),
            "DISCORD_DEV_GUILD_ID": str(fake.guild_id),
        }
    )
    async with open_services(settings) as services:
        bot = ImagineBot(services, delivery=DeliveryConfig(min_edit_interval=0.2))
        async with fake.running(bot):
            yield Harness(fake, stability, services, bot)


async def test_settings_survive_a_restart(tmp_path: Path) -> None:
    async with FakeStability(api_key=API_KEY) as stability, FakeDiscord() as fake:
        async with bot_on(fake, stability, tmp_path / "data") as first:
            await settings(first, "quotas", {"server_images": 7})
            await settings(first, "spoilers", {"enabled": True})
        async with bot_on(fake, stability, tmp_path / "data") as second:
            assert second.services is not first.services
            shown = await settings(second, "show")
            assert "Images for the whole server per day: 7 images" in shown.content
            assert "Images posted as spoilers: yes" in shown.content
            usage = await answer(second, "usage")
            assert "7 images left of 7" in usage.content
