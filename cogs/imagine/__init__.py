"""`/imagine`: check the input, acknowledge at once, run the job, deliver progress and images."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.engine.events import Event
from bot.engine.models import JobRequest, Place, Requester
from bot.engine.options import ASPECT_RATIOS, MAX_SEED, MODELS, STYLES, GenerationOptions
from bot.engine.prompts import PromptError, parse_prompts
from bot.engine.runner import JobRunner
from bot.storage.jobs import JobRepository
from cogs.imagine import render
from cogs.imagine.delivery import NO_MENTIONS, DeliveryConfig, JobDelivery

if TYPE_CHECKING:
    from bot.client import ImagineBot

log = logging.getLogger(__name__)

REQUIRED_PERMISSIONS = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("attach_files", "Attach Files"),
    ("embed_links", "Embed Links"),
)


def _choices(
    values: tuple[str, ...] | list[str], labels: dict[str, str] | None = None
) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=(labels or {}).get(v, v), value=v) for v in values]


class ImagineCog(commands.Cog):
    def __init__(
        self,
        runner: JobRunner,
        jobs: JobRepository,
        settings: Settings,
        delivery: DeliveryConfig | None = None,
    ) -> None:
        self.runner = runner
        self.jobs = jobs
        self.settings = settings
        self.delivery_config = delivery or DeliveryConfig()
        self.deliveries: dict[str, JobDelivery] = {}
        self._unsubscribe = runner.subscribe(self._on_event)

    async def cog_unload(self) -> None:
        self._unsubscribe()

    async def _on_event(self, event: Event) -> None:
        delivery = self.deliveries.get(event.job_id)
        if delivery is not None:
            delivery.on_event(event)

    @app_commands.command(
        name="imagine", description="Turn prompts into images; separate prompts with commas."
    )
    @app_commands.describe(
        prompts='Comma-separated prompts; wrap one in "double quotes" to keep its commas.',
        negative_prompt="What to keep out of every image.",
        aspect_ratio="Shape of the images (default 1:1, square).",
        style="A style preset applied to every prompt.",
        seed="Seed of the first prompt (the next get seed+1, …); same seed + prompt = same image.",
        model="Which model draws the images.",
    )
    @app_commands.choices(
        aspect_ratio=_choices(ASPECT_RATIOS),
        style=_choices(STYLES),
        model=_choices(
            list(MODELS), {name: f"{m.label} ({m.credits:g} credits)" for name, m in MODELS.items()}
        ),
    )
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompts: app_commands.Range[str, 1, 6000],
        negative_prompt: app_commands.Range[str, 1, 6000] | None = None,
        aspect_ratio: str = "1:1",
        style: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        model: str | None = None,
    ) -> None:
        # Everything before defer() is quick and local: bad input is answered privately, and nothing is
        # sent to the image API for it.
        problem = self._permission_problem(interaction)
        options = GenerationOptions(
            model=model or self.settings.stability_model,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            style=style,
            seed=seed,
        )
        try:
            parsed = parse_prompts(prompts, max_prompts=self.settings.max_prompts)
        except PromptError as exc:
            problem = problem or str(exc)
        problem = problem or " ".join(options.problems())
        if problem:
            await interaction.response.send_message(problem, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(thinking=True)
        request = JobRequest(
            Requester(str(interaction.user.id), interaction.user.display_name),
            Place(interaction.guild_id, interaction.channel_id),
            tuple(parsed),
            options,
        )
        handle = self.runner.submit(request)
        self.deliveries[handle.job_id] = JobDelivery(
            interaction,
            handle,
            self.jobs,
            self.delivery_config,
            on_done=lambda job_id: self.deliveries.pop(job_id, None),
        )
        log.info(
            "job %s: /imagine by %s in guild %s channel %s, %d prompt(s)",
            handle.job_id,
            interaction.user.id,
            interaction.guild_id,
            interaction.channel_id,
            len(parsed),
        )

    @staticmethod
    def _permission_problem(interaction: discord.Interaction) -> str:
        if interaction.guild_id is None:
            return ""
        permissions = interaction.app_permissions
        missing = [label for name, label in REQUIRED_PERMISSIONS if not getattr(permissions, name)]
        return render.missing_permissions_text(missing) if missing else ""


async def setup(bot: ImagineBot) -> None:
    services = bot.services
    await bot.add_cog(ImagineCog(services.runner, services.jobs, services.settings, bot.delivery_config))
