"""The Discord side of the composition root: `ImagineBot`, its command tree, and running or syncing it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import traceback
from collections.abc import Iterator

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Services, open_services
from bot.config import Settings
from bot.tasks import spawn
from cogs.imagine.delivery import NO_MENTIONS, DeliveryConfig

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.imagine", "cogs.history", "cogs.server_settings")
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
    def __init__(
        self, services: Services, *, delivery: DeliveryConfig | None = None, recover_jobs: bool = True
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),  # no privileged intents: slash commands need none
            tree_cls=ImagineTree,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
        )
        self.services = services
        self.delivery_config = delivery or DeliveryConfig()
        # Crash recovery at start-up (the cogs do it as they load); not for a bot that only syncs commands.
        self.recover_jobs = recover_jobs
        self._stopping: asyncio.Task[None] | None = None

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

    @property
    def stopping(self) -> bool:
        return self._stopping is not None

    async def close(self) -> None:
        """Graceful: stop taking jobs (the gateway stays up, so whoever tries is told the bot is
        restarting), give running generations `shutdown_grace` seconds — the runner leaves the rest
        recorded, to resume — then unload the cogs (each delivery finishes, or says its job will resume at
        restart) and close the connection. Every caller waits for the same shutdown."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._close_gracefully(), name="shutdown")
        await asyncio.shield(self._stopping)

    async def _close_gracefully(self) -> None:
        try:
            await self.services.runner.shutdown(self.services.settings.shutdown_grace)
        finally:
            await super().close()

    async def on_ready(self) -> None:
        log.info(
            "logged in as %s (%s) in %d server(s)", self.user, getattr(self.user, "id", "?"), len(self.guilds)
        )


async def run_bot(settings: Settings) -> int:
    """Run until closed; SIGTERM or SIGINT closes gracefully (`ImagineBot.close`) and still exits 0. A
    second signal stops waiting for running generations: they are left recorded, to resume."""
    async with open_services(settings) as services:
        bot = ImagineBot(services)
        async with bot:
            with _stop_on_signals(bot):
                try:
                    await bot.start(settings.discord_token.reveal())
                except discord.LoginFailure:
                    print(TOKEN_HELP, file=sys.stderr)
                    return EXIT_USAGE
                except discord.PrivilegedIntentsRequired:  # pragma: no cover - we ask for none
                    print(
                        "Discord refused the gateway intents; see README → Troubleshooting.", file=sys.stderr
                    )
                    return EXIT_USAGE
                except Exception:
                    if not bot.stopping:
                        raise
                    # A signal during login: the session closed under it, as asked.
                    log.info("stopped while starting", exc_info=True)
                await bot.close()  # start() returns as soon as the gateway closes: let the shutdown end
    log.info("stopped")
    return 0


@contextlib.contextmanager
def _stop_on_signals(bot: ImagineBot) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal(signum: signal.Signals) -> None:
        if bot.stopping:
            log.warning(
                "%s again: not waiting for running generations; they resume at the next start", signum.name
            )
            spawn(bot.services.runner.shutdown(0), name="shutdown-now")
            return
        log.info("%s received: shutting down", signum.name)
        spawn(bot.close(), name="shutdown-on-signal")

    try:
        for signum in signals:
            loop.add_signal_handler(signum, on_signal, signum)
    except NotImplementedError:  # pragma: no cover - Windows: Ctrl-C stops the bot without the grace
        log.debug("no signal handlers on this platform")
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def sync_commands(settings: Settings) -> int:
    """Publish the slash commands globally (takes up to an hour to show everywhere; rate limited)."""
    async with open_services(settings) as services:
        bot = ImagineBot(services, recover_jobs=False)
        async with bot:
            try:
                await bot.login(settings.discord_token.reveal())
            except discord.LoginFailure:
                print(TOKEN_HELP, file=sys.stderr)
                return EXIT_USAGE
            synced = await bot.tree.sync()
    print(f"Published {len(synced)} command(s) to every server: {', '.join('/' + c.name for c in synced)}")
    return 0
