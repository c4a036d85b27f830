"""`/imagine`: check the input, acknowledge at once, run the job, deliver progress and images."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.engine.events import Event
from bot.engine.models import GenerationStatus, JobRequest, Place, Requester, new_job_id
from bot.engine.options import ASPECT_RATIOS, MAX_SEED, STYLES, GenerationOptions
from bot.engine.prompts import PromptError, parse_prompts
from bot.engine.runner import JobRunner, RunnerClosed
from bot.quotas import QuotaGate
from bot.storage.jobs import JobRecord, JobRepository
from cogs.common import channel_ids, choices, model_choices
from cogs.imagine import buttons, render
from cogs.imagine.delivery import NO_MENTIONS, DeliveryConfig, JobDelivery, JobSource
from cogs.imagine.destination import Destination
from cogs.imagine.recovery import JobRecovery, unposted_indexes

if TYPE_CHECKING:
    from bot.client import ImagineBot

log = logging.getLogger(__name__)

REQUIRED_PERMISSIONS = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("attach_files", "Attach Files"),
    ("embed_links", "Embed Links"),
)


class ImagineCog(commands.Cog):
    def __init__(
        self,
        runner: JobRunner,
        jobs: JobRepository,
        settings: Settings,
        delivery: DeliveryConfig | None = None,
        *,
        client: discord.Client | None = None,
        recover: bool = False,
        quotas: QuotaGate | None = None,
    ) -> None:
        self.runner = runner
        self.jobs = jobs
        self.settings = settings
        self.quotas = quotas  # limits, quotas and server settings; None: no limits (tests of other parts)
        self.delivery_config = delivery or DeliveryConfig()
        self.client = client  # reaches the jobs recovered at start-up, which have no interaction
        self.recover = recover and client is not None
        self.deliveries: dict[str, JobDelivery] = {}
        self._unsubscribe = runner.subscribe(self._on_event)

    async def cog_load(self) -> None:
        """Crash recovery, after login and before the gateway serves new work (see recovery.py)."""
        if not self.recover:
            return
        recovery = JobRecovery(
            self.runner, self.jobs, self._deliver_recovered, resume_window=self.settings.resume_window
        )
        try:
            await recovery.run()
        except Exception:  # the bot still serves new jobs; what was not recovered stays recorded
            log.exception("crash recovery failed")

    async def cog_unload(self) -> None:
        """At shutdown (the runner has stopped): finish what finished, say the rest will resume."""
        self._unsubscribe()
        deliveries = list(self.deliveries.values())
        if deliveries:
            log.info("shutting down: settling the delivery of %d job(s)", len(deliveries))
            await asyncio.gather(*(d.close() for d in deliveries), return_exceptions=True)

    def _track(self, delivery: JobDelivery) -> JobDelivery:
        self.deliveries[delivery.job_id] = delivery
        return delivery

    def _forget(self, job_id: str) -> None:
        self.deliveries.pop(job_id, None)

    def _deliver_recovered(self, job: JobSource, record: JobRecord) -> None:
        assert self.client is not None
        destination = Destination.for_record(self.client, record, self.delivery_config)
        progress_id = record.delivery.progress_message_id
        delivery = JobDelivery(
            job,
            destination,
            self.jobs,
            self.delivery_config,
            progress_message_id=progress_id,
            progress_via="webhook" if destination.webhook is not None and progress_id else "channel",
            posted=[g.index for g in record.generations if g.posted_message_id is not None],
            on_done=self._forget,
        )
        self._track(delivery).recover(unposted_indexes(record), created_at=record.created_at)

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
        aspect_ratio=choices(ASPECT_RATIOS),
        style=choices(STYLES),
        model=model_choices(),
    )
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
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
        # Everything before defer() is quick: bad input is answered privately, and nothing is sent to the
        # image API for it.
        policy = await self.quotas.settings_for(interaction.guild_id) if self.quotas else None
        options = GenerationOptions(
            model=model or (policy.default_model if policy else None) or self.settings.stability_model,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            style=style or (policy.default_style if policy else None),
            seed=seed,
        )
        max_prompts = (policy.max_prompts if policy else None) or self.settings.max_prompts
        try:
            parsed = parse_prompts(prompts, max_prompts=min(max_prompts, self.settings.max_prompts))
        except PromptError as exc:
            await self._refuse(interaction, str(exc))
            return
        await self._start_job(interaction, parsed, options)

    async def _start_job(
        self,
        interaction: discord.Interaction,
        prompts: Sequence[str],
        options: GenerationOptions,
        seeds: Sequence[int] | None = None,
    ) -> None:
        """Check, acknowledge, run and deliver a job: for /imagine and for the buttons that start one."""
        if not self.runner.accepting:
            await self._refuse(interaction, render.RESTARTING_TEXT)
            return
        problem = self._permission_problem(interaction) or " ".join(options.problems())
        if problem:
            await self._refuse(interaction, problem)
            return
        # Acknowledged before the quotas are counted: that reads the database, which a busy bot must not let
        # push the answer past Discord's 3 seconds.
        deferred = await interaction.response.defer(thinking=True)
        job_id = new_job_id()
        if self.quotas is not None:
            decision = await self.quotas.admit(
                job_id,
                str(interaction.user.id),
                interaction.guild_id,
                channel_ids(interaction),
                len(prompts),
                options.model,
            )
            if not decision.allowed:
                await interaction.delete_original_response()  # the "thinking…" message: say why privately
                await interaction.followup.send(
                    decision.message, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
                return
        request = JobRequest(
            Requester(str(interaction.user.id), interaction.user.display_name),
            Place(interaction.guild_id, interaction.channel_id),
            tuple(prompts),
            options,
        )
        try:
            handle = self.runner.submit(request, job_id=job_id, seeds=seeds)
        except RunnerClosed:  # the shutdown began while we deferred
            if self.quotas is not None:
                self.quotas.release(job_id)
            await interaction.edit_original_response(content=render.RESTARTING_TEXT)
            return
        policy = await self.quotas.settings_for(interaction.guild_id) if self.quotas else None
        destination = Destination.for_interaction(
            interaction, handle.job_id, request.requester.id, self.delivery_config
        )
        self._track(
            JobDelivery(
                handle,
                destination,
                self.jobs,
                self.delivery_config,
                # The deferred response is the progress message: known now, recorded before the first edit.
                progress_message_id=deferred.message_id if deferred is not None else None,
                on_done=self._forget,
                spoiler=bool(policy and policy.spoilers),
                places=lambda: self.runner.queue_positions(job_id),
            )
        )
        log.info(
            "job %s: started by %s in guild %s channel %s, %d prompt(s)",
            handle.job_id,
            interaction.user.id,
            interaction.guild_id,
            interaction.channel_id,
            len(prompts),
        )

    @staticmethod
    async def _refuse(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- buttons (see buttons.py): answered from the database, so they work after a restart -----------------

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component or interaction.data is None:
            return
        press = buttons.Press.parse(str(interaction.data.get("custom_id", "")))
        if press is None:
            return
        record = await self.jobs.get_job(press.job_id)
        if record is None:
            await self._refuse(interaction, "That job no longer exists (its owner may have deleted it).")
            return
        is_requester = record.requester.id == str(interaction.user.id)
        is_manager = interaction.guild_id is not None and interaction.permissions.manage_guild
        if not (is_requester or (press.action.managers_may and is_manager)):
            await self._refuse(interaction, "Only the requester can do that.")
            return
        await self._act(interaction, press, record)

    async def _act(self, interaction: discord.Interaction, press: buttons.Press, record: JobRecord) -> None:
        fresh = replace(record.options, seed=None)  # new seeds
        match press.action:
            case buttons.Action.CANCEL:
                if self.runner.cancel(record.id):
                    await interaction.response.defer()  # the progress message shows the cancellation
                else:
                    await self._refuse(interaction, "That job has already finished.")
            case buttons.Action.RETRY_FAILED:
                failed = [g for g in record.generations if g.status is GenerationStatus.FAILED]
                if not failed:
                    await self._refuse(interaction, "Nothing failed in that job.")
                    return
                prompts = [g.prompt for g in failed]
                await self._start_job(interaction, prompts, record.options, seeds=[g.seed for g in failed])
            case buttons.Action.REROLL:
                await self._start_job(interaction, [g.prompt for g in record.generations], fresh)
            case buttons.Action.REROLL_ONE:
                generation = next((g for g in record.generations if g.index == press.index), None)
                if generation is None:
                    await self._refuse(interaction, "That image is no longer known.")
                    return
                await self._start_job(interaction, [generation.prompt], fresh)
            case buttons.Action.DELETE:
                await interaction.response.defer()
                await interaction.delete_original_response()  # the message the button is on
                log.info("job %s: image %s deleted by %s", record.id, press.index, interaction.user.id)

    @staticmethod
    def _permission_problem(interaction: discord.Interaction) -> str:
        # In DMs, and where only a user installed the bot, everything goes through the interaction.
        if interaction.guild_id is None or not interaction.is_guild_integration():
            return ""
        permissions = interaction.app_permissions
        missing = [label for name, label in REQUIRED_PERMISSIONS if not getattr(permissions, name)]
        return render.missing_permissions_text(missing) if missing else ""


async def setup(bot: ImagineBot) -> None:
    services = bot.services
    await bot.add_cog(
        ImagineCog(
            services.runner,
            services.jobs,
            services.settings,
            bot.delivery_config,
            client=bot,
            recover=bot.recover_jobs,
            quotas=services.quotas,
        )
    )
