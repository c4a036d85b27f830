"""The Discord side of the composition root: `ImagineBot`, its command tree, and running or syncing it."""

from __future__ import annotations

import logging
import sys
import traceback

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Services, open_services
from bot.config import Settings
from cogs.imagine.delivery import NO_MENTIONS, DeliveryConfig

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.imagine",)
EXIT_USAGE = 2
TOKEN_HELP = (
    "Discord rejected DISCORD_TOKEN: copy a fresh token from https://discord.com/developers/applications"
    " → your application → Bot → Reset Token, put it in .env, and start again."
)


class ImagineTree(app_commands.CommandTree["ImagineBot"]):
    """Every unexpected error of a command ends in one friendly private reply and one log line."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        log.error(
            "command /%s failed for user %s: %s",
            command,
            interaction.user.id,
            "".join(traceback.format_exception(error)),
        )
        text = "Something went wrong on my side; the bot's operator can find the details in the log."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            else:
                await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            log.warning("could not tell user %s about the failure", interaction.user.id)


class ImagineBot(commands.Bot):
    def __init__(self, services: Services, *, delivery: DeliveryConfig | None = None) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),  # no privileged intents: slash commands need none
            tree_cls=ImagineTree,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
        )
        self.services = services
        self.delivery_config = delivery or DeliveryConfig()

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError:
                log.exception("extension %s failed to load", extension)
        guild_id = self.services.settings.discord_dev_guild_id
        if guild_id is not None:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d command(s) to development server %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        log.info(
            "logged in as %s (%s) in %d server(s)", self.user, getattr(self.user, "id", "?"), len(self.guilds)
        )


async def run_bot(settings: Settings) -> int:
    async with open_services(settings) as services:
        bot = ImagineBot(services)
        async with bot:
            try:
                await bot.start(settings.discord_token.reveal())
            except discord.LoginFailure:
                print(TOKEN_HELP, file=sys.stderr)
                return EXIT_USAGE
            except discord.PrivilegedIntentsRequired:  # pragma: no cover - we ask for none
                print("Discord refused the gateway intents; see README → Troubleshooting.", file=sys.stderr)
                return EXIT_USAGE
    return 0


async def sync_commands(settings: Settings) -> int:
    """Publish the slash commands globally (takes up to an hour to show everywhere; rate limited)."""
    async with open_services(settings) as services:
        bot = ImagineBot(services)
        async with bot:
            try:
                await bot.login(settings.discord_token.reveal())
            except discord.LoginFailure:
                print(TOKEN_HELP, file=sys.stderr)
                return EXIT_USAGE
            synced = await bot.tree.sync()
    print(f"Published {len(synced)} command(s) to every server: {', '.join('/' + c.name for c in synced)}")
    return 0
