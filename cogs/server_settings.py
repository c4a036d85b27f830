"""/imagine-settings: what a server's managers decide about image making there. Saved at once, in force at
once (/imagine reads them for every request); each answer shows the settings as they now are."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import PROMPTS_CEILING, Settings
from bot.engine.options import STYLES
from bot.quotas import GuildSettings, Limits, effective_limits
from bot.storage.guild_settings import GuildSettingsRepository
from cogs.common import can_manage_guild, model_choices, reply
from cogs.imagine.render import model_label

if TYPE_CHECKING:
    from bot.client import ImagineBot

log = logging.getLogger(__name__)

Channel = app_commands.AppCommandChannel | app_commands.AppCommandThread
RESETTABLE = {  # value: label
    "everything": "everything",
    "allowed_channel_ids": "allowed channels",
    "max_prompts": "max prompts",
    "user_daily_image_quota": "member daily images",
    "guild_daily_image_quota": "server daily images",
    "guild_daily_credit_budget": "daily credit budget",
    "default_model": "default model",
    "default_style": "default style",
    "spoilers": "spoilers",
}
NOT_ALLOWED = "Only members with the **Manage Server** permission can change the image settings."


def _choices(values: dict[str, str]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=label, value=value) for value, label in values.items()]


def settings_text(guild: GuildSettings, limits: Limits, settings: Settings) -> str:
    """The server's settings as they apply now; "(bot default)" where the server chose nothing."""

    def own(value: Any, text: str) -> str:
        return text if value is not None else f"{text} (bot default)"

    def amount(n: float, noun: str) -> str:
        return f"{n:g} {noun}" if n else "unlimited"

    channels = ", ".join(f"<#{c}>" for c in guild.allowed_channel_ids) or "every channel"
    model = guild.default_model or settings.stability_model
    lines = [
        "**Image settings for this server**",
        f"Channels where /imagine works: {channels}",
        f"Prompts per command: at most {limits.max_prompts} "
        + (
            "(bot default)" if guild.max_prompts is None else f"(the bot allows up to {settings.max_prompts})"
        ),
        f"Images per member per day: "
        f"{own(guild.user_daily_image_quota, amount(limits.user_daily_images, 'images'))}",
        f"Images for the whole server per day: "
        f"{own(guild.guild_daily_image_quota, amount(limits.guild_daily_images, 'images'))}",
        "Daily credit budget: "
        + own(
            guild.guild_daily_credit_budget,
            f"{limits.guild_daily_credits:g} credits" if limits.guild_daily_credits else "none",
        ),
        f"Default model: {own(guild.default_model, f'{model_label(model)} (`{model}`)')}",
        f"Default style: {own(guild.default_style, guild.default_style or 'none')}",
        f"Images posted as spoilers: {'yes' if guild.spoilers else 'no'}",
        "Daily figures reset at 00:00 UTC; 0 means unlimited.",
    ]
    return "\n".join(lines)


@app_commands.guild_only()
@app_commands.guild_install()
@app_commands.default_permissions(manage_guild=True)
class ServerSettingsCog(
    commands.GroupCog,
    group_name="imagine-settings",
    group_description="This server's image settings (Manage Server permission only).",
):
    def __init__(self, guild_settings: GuildSettingsRepository, settings: Settings) -> None:
        self.guild_settings = guild_settings
        self.settings = settings
        super().__init__()

    @app_commands.command(name="show", description="Show this server's image settings.")
    async def show(self, interaction: discord.Interaction) -> None:
        if (guild_id := await self._managed_guild(interaction)) is not None:
            await self._answer(interaction, "", await self.guild_settings.get(guild_id))

    @app_commands.command(name="channels", description="Choose the channels where /imagine may be used.")
    @app_commands.describe(
        action="Add or remove a channel, or clear the list (then every channel is allowed).",
        channel="The channel (default: this one). A category allows every channel in it.",
    )
    @app_commands.choices(action=_choices({"add": "add", "remove": "remove", "clear": "clear (allow all)"}))
    async def channels(
        self, interaction: discord.Interaction, action: str, channel: Channel | None = None
    ) -> None:
        if (guild_id := await self._managed_guild(interaction)) is None:
            return
        current = await self.guild_settings.get(guild_id)
        chosen = channel.id if channel is not None else interaction.channel_id
        ids = set(current.allowed_channel_ids)
        if action == "clear":
            ids.clear()
        elif chosen is not None:
            ids = ids | {chosen} if action == "add" else ids - {chosen}
        await self._save(interaction, guild_id, current.with_channels(ids))

    @app_commands.command(name="max-prompts", description="The most prompts one /imagine may have here.")
    @app_commands.describe(count="1 up to the bot's own limit.")
    async def max_prompts(
        self, interaction: discord.Interaction, count: app_commands.Range[int, 1, PROMPTS_CEILING]
    ) -> None:
        if (guild_id := await self._managed_guild(interaction)) is None:
            return
        if count > self.settings.max_prompts:
            text = (
                f"The bot allows at most {self.settings.max_prompts} prompts per command; choose 1 to that."
            )
            await reply(interaction, text)
            return
        current = await self.guild_settings.get(guild_id)
        await self._save(interaction, guild_id, replace(current, max_prompts=count))

    @app_commands.command(name="quotas", description="Daily image quotas and credit budget (0 = unlimited).")
    @app_commands.describe(
        member_images="Images each member may make per day (0 = unlimited).",
        server_images="Images the whole server may make per day (0 = unlimited).",
        credit_budget="Credits the server may spend per day (0 = no budget).",
    )
    async def quotas(
        self,
        interaction: discord.Interaction,
        member_images: app_commands.Range[int, 0, 1_000_000] | None = None,
        server_images: app_commands.Range[int, 0, 1_000_000] | None = None,
        credit_budget: app_commands.Range[float, 0, 1_000_000_000] | None = None,
    ) -> None:
        if (guild_id := await self._managed_guild(interaction)) is None:
            return
        current = await self.guild_settings.get(guild_id)
        changed = replace(
            current,
            user_daily_image_quota=_pick(member_images, current.user_daily_image_quota),
            guild_daily_image_quota=_pick(server_images, current.guild_daily_image_quota),
            guild_daily_credit_budget=_pick(credit_budget, current.guild_daily_credit_budget),
        )
        await self._save(interaction, guild_id, changed)

    @app_commands.command(name="defaults", description="The model and style /imagine uses when not told.")
    @app_commands.describe(model="Default model.", style="Default style preset.")
    @app_commands.choices(
        model=model_choices(),
        style=_choices({s: s for s in STYLES}),
    )
    async def defaults(
        self, interaction: discord.Interaction, model: str | None = None, style: str | None = None
    ) -> None:
        if (guild_id := await self._managed_guild(interaction)) is None:
            return
        current = await self.guild_settings.get(guild_id)
        changed = replace(
            current,
            default_model=_pick(model, current.default_model),
            default_style=_pick(style, current.default_style),
        )
        await self._save(interaction, guild_id, changed)

    @app_commands.command(name="spoilers", description="Post images hidden behind a spoiler, or not.")
    @app_commands.describe(enabled="True: every image is posted as a spoiler.")
    async def spoilers(self, interaction: discord.Interaction, enabled: bool) -> None:
        if (guild_id := await self._managed_guild(interaction)) is not None:
            current = await self.guild_settings.get(guild_id)
            await self._save(interaction, guild_id, replace(current, spoilers=enabled))

    @app_commands.command(name="reset", description="Go back to the bot's default for one setting, or all.")
    @app_commands.describe(setting="Which setting to reset.")
    @app_commands.choices(setting=_choices(RESETTABLE))
    async def reset(self, interaction: discord.Interaction, setting: str) -> None:
        if (guild_id := await self._managed_guild(interaction)) is None:
            return
        if setting not in RESETTABLE:
            await reply(interaction, "Choose one of the settings offered.")
            return
        current, default = await self.guild_settings.get(guild_id), GuildSettings()
        changed = (
            default if setting == "everything" else replace(current, **{setting: getattr(default, setting)})
        )
        await self._save(interaction, guild_id, changed)

    async def _managed_guild(self, interaction: discord.Interaction) -> int | None:
        """The server's id when the user may manage it; otherwise answers why not. Discord hides the command
        from others by default, but a server can grant it to anyone: this check is what counts."""
        if interaction.guild_id is None:
            await reply(interaction, "Image settings belong to a server: use this command in one.")
            return None
        if not can_manage_guild(interaction):
            await reply(interaction, NOT_ALLOWED)
            return None
        return interaction.guild_id

    async def _save(self, interaction: discord.Interaction, guild_id: int, changed: GuildSettings) -> None:
        await self.guild_settings.put(guild_id, changed)
        log.info(
            "guild %s: settings changed by user %s: %s", guild_id, interaction.user.id, changed.to_json()
        )
        await self._answer(interaction, "Saved; in force from now on.\n", changed)

    async def _answer(self, interaction: discord.Interaction, prefix: str, guild: GuildSettings) -> None:
        limits = effective_limits(self.settings, guild)
        await reply(interaction, prefix + settings_text(guild, limits, self.settings))


def _pick(new: Any, old: Any) -> Any:
    return old if new is None else new


async def setup(bot: ImagineBot) -> None:
    services = bot.services
    await bot.add_cog(ServerSettingsCog(services.guild_settings, services.settings))
