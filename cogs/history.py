"""/jobs, /job, /usage and /forget-me: what a user asked for, what it used, and forgetting it all."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine.models import GenerationStatus, JobStatus
from bot.engine.runner import JobRunner
from bot.quotas import Limits, QuotaGate, Usage, reset_text
from bot.storage.images import ImageFiles
from bot.storage.jobs import GenerationRecord, JobRecord, JobRepository
from bot.storage.usage import UsageRepository
from cogs.common import MESSAGE_LIMIT, can_manage_guild, fit, message_link, parse_job_id, reply, timestamp
from cogs.imagine.render import ICONS, model_label, safe

if TYPE_CHECKING:
    from bot.client import ImagineBot

log = logging.getLogger(__name__)

RECENT_JOBS = 10
CONFIRM_TIMEOUT = 60.0
JOB_STATUS = {
    JobStatus.RUNNING: "⏳ running",
    JobStatus.SUCCEEDED: "✅ done",
    JobStatus.PARTIAL: "⚠️ done, with failures",
    JobStatus.FAILED: "❌ failed",
    JobStatus.CANCELLED: "⏹️ cancelled",
}

# Useful wherever the user is: in servers, in DMs with the bot, and as an app installed on their account.
everywhere = app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
any_install = app_commands.allowed_installs(guilds=True, users=True)


# --- what the commands write: pure functions ---------------------------------------------------------


def _plural(n: int | float, noun: str) -> str:
    return f"{n:g} {noun}" + ("" if n == 1 else "s")


def jobs_text(jobs: Sequence[JobRecord]) -> str:
    if not jobs:
        return "You have no jobs yet: make one with `/imagine`."
    header = ["**Your recent jobs**, newest first (`/job id:` shows one in full)"]
    lines = [
        f"`{job.id}` · {timestamp(job.created_at)} · {JOB_STATUS[job.status]} · "
        f"{_plural(job.prompt_count, 'prompt')}: {safe(', '.join(job.prompts), 80)}"
        for job in jobs
    ]
    return fit(header, lines)


def job_text(job: JobRecord, *, show_requester: bool) -> str:
    options = job.options
    details = [model_label(options.model), options.aspect_ratio]
    if options.style:
        details.append(f"style {options.style}")
    if job.estimated_credits is not None:
        details.append(f"estimated {_plural(job.estimated_credits, 'credit')}")
    by = f" by {safe(job.requester.name, 40)}" if show_requester else ""
    header = [
        f"**Job `{job.id}`**{by} · {timestamp(job.created_at, 'f')} · {JOB_STATUS[job.status]}",
        " · ".join(details),
    ]
    for limit in (80, 40):  # shorter prompts before leaving any out
        text = "\n".join([*header, *(_generation_line(job, g, limit) for g in job.generations)])
        if len(text) <= MESSAGE_LIMIT:
            return text
    return fit(header, [_generation_line(job, g, 20) for g in job.generations])


def _generation_line(job: JobRecord, g: GenerationRecord, prompt_limit: int) -> str:
    line = f"{ICONS[g.status]} {g.index + 1}. {safe(g.prompt, prompt_limit)} — seed {g.seed}"
    if g.status is GenerationStatus.SUCCEEDED:
        channel = job.place.channel_id or job.delivery.progress_channel_id
        link = message_link(job.place.guild_id, channel, g.posted_message_id)
        return f"{line} — [image]({link})" if link else f"{line} — made, not posted yet"
    if g.status is GenerationStatus.FAILED:
        reason = g.failure.message if g.failure else "unknown error"
        return f"{line} — failed: {safe(reason, 200)}"
    return f"{line} — {g.status}"


def usage_text(usage: Usage, limits: Limits, *, in_guild: bool, now: float) -> str:
    def left(used: float, limit: float, noun: str) -> str:
        return "no daily limit" if not limit else f"{_plural(max(limit - used, 0), noun)} left of {limit:g}"

    lines = [
        f"**Your usage today** · quotas reset {reset_text(now)}",
        f"You: {_plural(usage.user_images, 'image')}, {_plural(usage.user_credits, 'credit')} — "
        f"{left(usage.user_images, limits.user_daily_images, 'image')}",
        f"Jobs running: {usage.user_active_jobs} of {limits.user_max_active_jobs} allowed at once",
    ]
    if in_guild:
        budget = limits.guild_daily_credits
        credits = "no credit budget" if not budget else f"{left(usage.guild_credits, budget, 'credit')}"
        lines.append(
            f"This server: {_plural(usage.guild_images, 'image')}, {_plural(usage.guild_credits, 'credit')}"
            f" — {left(usage.guild_images, limits.guild_daily_images, 'image')}; {credits}"
        )
    else:
        lines.append("Server quotas don't apply here; your own quota counts images made everywhere.")
    lines.append("Counted: images made or still being made today (failed ones are free).")
    return "\n".join(lines)


# --- /forget-me confirmation ---------------------------------------------------------------------------


class ForgetConfirmation(discord.ui.View):
    """Confirm / Cancel under a private message; only `owner_id` may answer. No answer: nothing happens."""

    def __init__(self, owner_id: int, forget: Callable[[], Awaitable[str]], timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.forget = forget
        self.answered = False
        self.asked: discord.Interaction | None = None  # the /forget-me interaction, to edit on timeout

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await reply(interaction, "Only the person who asked can answer this.")
            return False
        if self.answered:  # a second press while the first is being handled
            await reply(interaction, "Already answered.")
            return False
        return True

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger, custom_id="forget-me:yes")
    async def confirm(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetConfirmation]
    ) -> None:
        self.answered = True
        self.stop()
        await interaction.response.defer()  # deleting many image folders can take longer than 3 s
        await interaction.edit_original_response(content=await self.forget(), view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="forget-me:no")
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetConfirmation]
    ) -> None:
        self.answered = True
        self.stop()
        await interaction.response.edit_message(content="Cancelled: nothing was deleted.", view=None)

    async def on_timeout(self) -> None:
        if self.asked is None or self.answered:
            return
        try:
            await self.asked.edit_original_response(content="No answer: nothing was deleted.", view=None)
        except discord.HTTPException:
            log.info("could not mark the /forget-me question of user %s as expired", self.owner_id)


# --- the cog -------------------------------------------------------------------------------------------


class HistoryCog(commands.Cog):
    def __init__(
        self,
        jobs: JobRepository,
        images: ImageFiles,
        runner: JobRunner,
        usage: UsageRepository,
        quotas: QuotaGate,
        *,
        confirm_timeout: float = CONFIRM_TIMEOUT,
    ) -> None:
        self.jobs = jobs
        self.images = images
        self.runner = runner
        self.usage = usage
        self.quotas = quotas
        self.confirm_timeout = confirm_timeout

    @app_commands.command(name="jobs", description="Your recent image jobs: id, when, prompts and status.")
    @everywhere
    @any_install
    async def list_jobs(self, interaction: discord.Interaction) -> None:
        jobs = await self.jobs.recent_jobs(str(interaction.user.id), RECENT_JOBS)
        await reply(interaction, jobs_text(jobs))

    @app_commands.command(name="job", description="One job in full: each prompt's status, seed and image.")
    @app_commands.rename(typed="id")
    @app_commands.describe(typed="The job's 8-character id, as /jobs or the progress message shows it.")
    @everywhere
    @any_install
    async def show_job(
        self, interaction: discord.Interaction, typed: app_commands.Range[str, 1, 100]
    ) -> None:
        job_id = parse_job_id(typed)
        job = None if job_id is None else await self.jobs.get_job(job_id)
        if job is None:
            shown = " ".join(typed.split()).replace("`", "'")[:20]  # shown as code: no markdown
            await reply(
                interaction, f"No job with the id `{shown}`: `/jobs` lists yours (ids have 8 characters)."
            )
            return
        mine = job.requester.id == str(interaction.user.id)
        manager = job.place.guild_id is not None and job.place.guild_id == interaction.guild_id
        if not mine and not (manager and can_manage_guild(interaction)):
            await reply(
                interaction, "That job is someone else's: only they, or a server manager, can see it."
            )
            return
        await reply(interaction, job_text(job, show_requester=not mine))

    @app_commands.command(name="usage", description="Your images and credits today, and what is left.")
    @everywhere
    @any_install
    async def show_usage(self, interaction: discord.Interaction) -> None:
        user_id, guild_id = str(interaction.user.id), interaction.guild_id
        usage = await self.quotas.usage(user_id, guild_id)
        limits = await self.quotas.limits_for(guild_id)
        now = self.quotas.clock()
        await reply(interaction, usage_text(usage, limits, in_guild=guild_id is not None, now=now))

    @app_commands.command(name="forget-me", description="Delete all your jobs and their stored images.")
    @everywhere
    @any_install
    async def forget_me(self, interaction: discord.Interaction) -> None:
        user_id = str(interaction.user.id)
        if busy := self._running(user_id):
            await reply(
                interaction, f"You have {_plural(busy, 'job')} running: try again once it has finished."
            )
            return
        count, images = await self.usage.stored(user_id)
        if not count:
            await reply(interaction, "The bot keeps nothing of yours: there is nothing to forget.")
            return
        view = ForgetConfirmation(interaction.user.id, lambda: self._forget(user_id), self.confirm_timeout)
        await reply(
            interaction,
            f"This deletes your {_plural(count, 'job')} and the {_plural(images, 'image')} the bot stored for"
            " them. Images already posted in channels stay: delete those messages yourself if you want them"
            " gone. Are you sure?",
            view=view,
        )
        view.asked = interaction

    def _running(self, user_id: str) -> int:
        return sum(1 for h in self.runner.jobs.values() if h.progress.request.requester.id == user_id)

    async def _forget(self, user_id: str) -> str:
        if busy := self._running(user_id):  # started one while the question was open
            return f"You have {_plural(busy, 'job')} running now: nothing was deleted. Try again later."
        job_ids = await self.jobs.delete_requester(user_id)
        for job_id in job_ids:
            await self.images.delete_job(job_id)
        log.info("user %s forgotten: %d job(s) and their images deleted", user_id, len(job_ids))
        return f"Done: {_plural(len(job_ids), 'job')} and their stored images deleted."


async def setup(bot: ImagineBot) -> None:
    services = bot.services
    await bot.add_cog(
        HistoryCog(services.jobs, services.images, services.runner, services.usage, services.quotas)
    )
