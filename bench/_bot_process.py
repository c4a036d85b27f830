"""The real bot in its own process, pointed at a fake Discord: `python -m bench._bot_process REST GATEWAY`.

Settings come from the environment as usual. On SIGTERM it closes the bot and prints its peak RSS (MB) as
one JSON line, so the benchmark measures the bot's memory and nothing else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys

import discord
import yarl

from bench._support import peak_rss_mb


async def serve() -> None:
    import os

    from bot.app import open_services
    from bot.client import ImagineBot
    from bot.config import Settings

    settings = Settings.from_env(os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with open_services(settings) as services:
        bot = ImagineBot(services)
        async with bot:
            runner = asyncio.create_task(bot.start(settings.discord_token.reveal()))
            await stop.wait()
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


def main() -> None:
    discord.http.Route.BASE = sys.argv[1]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sys.argv[2])
    asyncio.run(serve())
    print(json.dumps({"rss_mb": peak_rss_mb()}), flush=True)


if __name__ == "__main__":
    main()
