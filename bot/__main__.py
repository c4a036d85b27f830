"""Composition root: `python -m bot [run|imagine|sync|check]` (also the `imagine-bot` script).

Loads `.env`, builds the settings, sets up logging once, then hands over to the chosen front end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dotenv import load_dotenv

from bot.config import ConfigError, Settings

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagine-bot", description="Discord image-generation bot.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the Discord bot (the default)")
    from bot import cli

    cli.add_arguments(
        commands.add_parser("imagine", help="generate images from the terminal, without Discord")
    )
    commands.add_parser("sync", help="publish the slash commands to every server (run after upgrading)")
    commands.add_parser("check", help="check the settings and the image API key, then exit")
    return parser


def setup_logging(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # discord.py and aiohttp are chatty at INFO about things users need not see.
    logging.getLogger("discord").setLevel(max(level, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    # The current directory's .env, as documented: python-dotenv's default searches up from this file's
    # folder instead, which finds a checkout's .env from anywhere and an installed bot's never.
    load_dotenv(Path.cwd() / ".env", override=False)
    try:
        settings = Settings.from_env(os.environ, need_discord=command in ("run", "sync"))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    setup_logging(settings.log_level_number)
    try:
        return asyncio.run(_dispatch(command, args, settings))
    except KeyboardInterrupt:
        return 130


async def _dispatch(command: str, args: argparse.Namespace, settings: Settings) -> int:
    if command == "imagine":
        from bot.cli import run_imagine

        return await run_imagine(args, settings)
    if command == "check":
        from bot.check import run_check

        return await run_check(settings)
    from bot.client import run_bot, sync_commands

    if command == "sync":
        return await sync_commands(settings)
    return await run_bot(settings)


if __name__ == "__main__":
    sys.exit(main())
