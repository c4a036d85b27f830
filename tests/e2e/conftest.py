"""The real bot, end to end: ImagineBot (real discord.py) against a fake Discord, generating through a fake
Stability server, with a real database and image folder in a temp directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app import Services, open_services
from bot.client import ImagineBot
from bot.config import Settings
from cogs.imagine.delivery import DeliveryConfig
from tests.fakes.fake_discord import FakeDiscord, InteractionRecord, MessageRecord
from tests.fakes.stability import FakeStability

API_KEY = "sk-e2e-very-secret-key"


@dataclass
class Harness:
    discord: FakeDiscord
    stability: FakeStability
    services: Services
    bot: ImagineBot

    async def imagine(self, prompts: str, **options: object) -> InteractionRecord:
        return await self.discord.push_slash_command("imagine", {"prompts": prompts, **options})

    async def finished(self, pushed: InteractionRecord, timeout: float = 10) -> MessageRecord:
        """Wait until the progress message shows the final summary; returns it."""

        def done(fake: FakeDiscord) -> bool:
            original = fake.interaction(pushed.id).original
            return original is not None and "\n**" in original.content and "delivered" in original.content

        await self.discord.wait_for(done, timeout, what="the job's final summary")
        original = self.discord.interaction(pushed.id).original
        assert original is not None
        return original

    def images(self, pushed: InteractionRecord) -> list[MessageRecord]:
        """Messages of this interaction that carry an image, wherever they were posted."""
        original = self.discord.interaction(pushed.id).original
        return [
            m
            for m in self.discord.messages.values()
            if m.attachments
            and not m.deleted
            and (m.interaction_id == pushed.id or m.origin == "channel")
            and m is not original
        ]


MakeHarness = Callable[..., "AsyncIterator[Harness]"]


@pytest.fixture
def harness_factory(tmp_path: Path) -> Callable[..., object]:
    @asynccontextmanager
    async def make(
        env: dict[str, str] | None = None,
        delivery: DeliveryConfig | None = None,
        latency: float = 0.0,
        image: bytes | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> AsyncIterator[Harness]:
        async with (
            FakeStability(api_key=API_KEY, latency=latency, image=image, rate_limit=rate_limit) as stability,
            FakeDiscord() as fake,
        ):
            settings = Settings.from_env(
                {
                    "DISCORD_TOKEN": fake.token,
                    "STABILITY_API_KEY": API_KEY,
                    "STABILITY_API_BASE": stability.base_url,
                    "DATA_DIR": str(tmp_path / "data"),
                    "DISCORD_DEV_GUILD_ID": str(fake.guild_id),
                    "GENERATION_TIMEOUT": "5",
                    **(env or {}),
                }
            )
            async with open_services(settings) as services:
                bot = ImagineBot(services, delivery=delivery or DeliveryConfig(min_edit_interval=0.2))
                async with fake.running(bot):
                    yield Harness(fake, stability, services, bot)

    return make


@pytest.fixture
async def harness(harness_factory: Callable[..., object]) -> AsyncIterator[Harness]:
    async with harness_factory() as h:  # type: ignore[attr-defined]
        yield h
