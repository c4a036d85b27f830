"""The real bot in a child process, against fakes that run in the test's own event loop.

    python -m tests.fakes.bot_process REST_BASE GATEWAY_URL

is `python -m bot run` — the same entry point, settings from the environment, signal handling and exit
status included — with discord.py pointed at a fake Discord. From a test, `BotProcess` starts it, reads its
log as it comes (wait for a line instead of sleeping), and kills or terminates it::

    async with BotProcess(fake, env, cwd=tmp_path) as bot:
        await bot.ready()
        ...
        bot.kill()  # SIGKILL: a crash, nothing cleaned up
        assert await bot.wait() == -9
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.fakes.fake_discord import FakeDiscord

ROOT = Path(__file__).resolve().parents[2]
# Only what a Python process needs: nothing from the developer's environment reaches the bot's settings.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


class BotProcess:
    def __init__(self, fake: FakeDiscord, env: Mapping[str, str], *, cwd: Path) -> None:
        self.fake = fake
        self.env = {
            **{k: v for k, v in os.environ.items() if k in _INHERITED},
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.cwd = cwd  # no .env there: only `env` configures the bot
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._identifies_before = 0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
        await self.wait()

    async def start(self) -> None:
        self._identifies_before = len(self.fake.identify_payloads)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fakes.bot_process",
            self.fake.rest_base,
            self.fake.gateway_url,
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read(), name="bot-process-log")

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()
            self._changed = asyncio.Event()
        self._changed.set()

    async def ready(self, timeout: float = 10.0) -> None:
        """Wait until this process identified on the gateway: recovery has run, new work is served."""

        def identified(fake: FakeDiscord) -> bool:
            self._check_alive()
            return len(fake.identify_payloads) > self._identifies_before and fake.gateway.active is not None

        try:
            await self.fake.wait_for(identified, timeout, what="the bot process to connect")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- bot log ---\n{self.log_tail()}") from None

    async def wait_log(self, text: str, timeout: float = 10.0, *, count: int = 1) -> list[str]:
        """Wait until `count` lines of the log contain `text`; returns them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [line for line in self.lines if text in line]
            if len(found) >= count:
                return found
            changed = self._changed
            if self._reader is not None and self._reader.done():
                raise AssertionError(f"the bot exited before logging {text!r}:\n{self.log_tail()}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no log line with {text!r} after {timeout}s:\n{self.log_tail()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def kill(self) -> None:
        """SIGKILL: the bot stops dead, as in a crash or an out-of-memory kill."""
        assert self.process is not None
        self.process.kill()

    def terminate(self) -> None:
        """SIGTERM: what `docker stop` or systemd sends."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float = 10.0) -> int:
        """The exit status (negative: killed by that signal), once the process and its log are done."""
        assert self.process is not None
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.lines[-lines:])

    def _check_alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError(f"the bot exited with {self.process.returncode}:\n{self.log_tail()}")


def main() -> int:
    import discord
    import yarl

    discord.http.Route.BASE = sys.argv[1]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sys.argv[2])
    from bot.__main__ import main as bot_main

    return bot_main(["run"])


if __name__ == "__main__":
    sys.exit(main())
