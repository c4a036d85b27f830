"""What the bot writes in Discord, as pure functions of a job's progress: unit-tested without Discord.

Everything taken from user input is markdown-escaped here; mentions are disabled where the text is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from discord.utils import escape_markdown

from bot.engine.models import GenerationStatus, JobStatus
from bot.engine.options import MODELS
from bot.engine.progress import GenerationState, JobProgress

MESSAGE_LIMIT = 2000
RESTARTING_TEXT = "The bot is restarting: try again in a minute."

ICONS = {
    GenerationStatus.QUEUED: "⏳",
    GenerationStatus.RUNNING: "🎨",
    GenerationStatus.SUCCEEDED: "✅",
    GenerationStatus.FAILED: "❌",
    GenerationStatus.CANCELLED: "⏹️",
}


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word where possible, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;") + "…"


def safe(text: str, limit: int) -> str:
    """User text shortened, then escaped, so that escaping never breaks the length budget by much."""
    return escape_markdown(shorten(text, limit))


def model_label(model: str) -> str:
    found = MODELS.get(model)
    return found.label if found else model


def _state_text(state: GenerationState, now: float, wall_now: float, place: int | None = None) -> str:
    elapsed = state.elapsed(now) or 0.0
    match state.status:
        case GenerationStatus.QUEUED:
            return "queued" if place is None else f"queued (#{place} in line)"
        case GenerationStatus.RUNNING:
            started = int(wall_now - elapsed)
            return f"generating (started <t:{started}:R>)"
        case GenerationStatus.SUCCEEDED:
            return f"done in {elapsed:.1f}s"
        case GenerationStatus.FAILED:
            return f"failed: {state.failure.message if state.failure else 'unknown error'}"
        case _:
            return "cancelled"


def progress_text(
    progress: JobProgress,
    now: float,
    wall_now: float,
    *,
    limit: int = MESSAGE_LIMIT,
    not_posted: int = 0,
    footer: str | None = None,
    places: Mapping[int, int] | None = None,
) -> str:
    """The one progress message: a header, a line per prompt, then totals or the final summary (or
    `footer` instead of either). `not_posted`: images made that could not be posted; `places`: each
    waiting prompt's place in the queue, by index."""
    count = len(progress.generations)
    options = progress.request.options
    header = (
        f"**{'Imagined' if progress.finished else 'Imagining'} {count} prompt{'s' * (count != 1)}** "
        f"· {model_label(options.model)} · {options.aspect_ratio} · job `{progress.job_id}`"
    )
    if footer is None:
        footer = (
            summary_text(progress, now, not_posted=not_posted) if progress.finished else totals_text(progress)
        )
    states = [
        (
            f"{ICONS[g.status]} {g.index + 1}. ",
            f" — {_state_text(g, now, wall_now, (places or {}).get(g.index))}",
        )
        for g in progress.generations
    ]
    fixed = len(header) + len(footer) + 2 + sum(len(a) + len(b) + 1 for a, b in states)
    # Share what is left fairly between the prompts; escaping can double a character, so count for it.
    budget = max(12, (limit - fixed) // max(count, 1) // 2)
    lines = [
        f"{a}{safe(g.prompt, budget)}{b}" for (a, b), g in zip(states, progress.generations, strict=True)
    ]
    text = "\n".join([header, *lines, footer])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def totals_text(progress: JobProgress) -> str:
    parts = []
    for status, word in (
        (GenerationStatus.SUCCEEDED, "done"),
        (GenerationStatus.RUNNING, "generating"),
        (GenerationStatus.QUEUED, "queued"),
        (GenerationStatus.FAILED, "failed"),
    ):
        if n := progress.count(status):
            parts.append(f"{n} {word}")
    return f"-# {' · '.join(parts)}"


def paused_text(progress: JobProgress, now: float, wall_now: float) -> str:
    """The progress message of a job left unfinished by a shutdown: what ran is queued again at restart."""
    waiting = tuple(
        replace(g, status=GenerationStatus.QUEUED, started_at=None)
        if g.status is GenerationStatus.RUNNING
        else g
        for g in progress.generations
    )
    left = sum(1 for g in waiting if not g.status.is_terminal)
    note = (
        f"-# ⏸️ The bot is restarting: {left} unfinished prompt{'s' * (left != 1)} will carry on when it is "
        "back."
    )
    return progress_text(replace(progress, generations=waiting), now, wall_now, footer=note)


def summary_text(progress: JobProgress, now: float, *, not_posted: int = 0) -> str:
    total = len(progress.generations)
    delivered = progress.count(GenerationStatus.SUCCEEDED) - not_posted
    failed = progress.count(GenerationStatus.FAILED)
    verdict = {
        JobStatus.SUCCEEDED: "**Done**",
        JobStatus.PARTIAL: "**Done, with failures**",
        JobStatus.FAILED: "**Failed**",
        JobStatus.CANCELLED: "**Cancelled**",
    }.get(progress.status, "**Done**")
    parts = [f"{delivered} of {total} image{'s' * (total != 1)} delivered"]
    if not_posted:
        parts.append(f"{not_posted} could not be posted")
    if failed:
        parts.append(f"{failed} failed")
    if cancelled := progress.count(GenerationStatus.CANCELLED):
        parts.append(f"{cancelled} cancelled")
    return f"{verdict}: {', '.join(parts)} in {progress.elapsed(now):.1f}s."


def caption(progress: JobProgress, state: GenerationState, *, limit: int = MESSAGE_LIMIT) -> str:
    """The text posted with an image: the prompt, then seed, model and where it came from."""
    image = state.image
    seed = image.seed if image else state.seed
    size = f" · {image.width}×{image.height}" if image else ""
    details = (
        f"-# seed `{seed}` · {model_label(progress.request.options.model)}{size}"
        f" · {caption_marker(progress.job_id, state.index, len(progress.generations))}"
    )
    budget = (limit - len(details) - 10) // 2
    return f"**{safe(state.prompt, budget)}**\n{details}"


def caption_marker(job_id: str, index: int, total: int) -> str:
    """How an image's caption ends, after any user text: how recovery finds the image in its channel."""
    return f"job `{job_id}` ({index + 1}/{total})"


def missing_permissions_text(missing: list[str]) -> str:
    names = ", ".join(f"**{name}**" for name in missing)
    return (
        f"I can't post images here: I'm missing the {names} permission{'s' * (len(missing) != 1)} in this "
        "channel. Ask a server admin to grant them to my role (Server Settings → Roles, or the channel's "
        "Permissions tab), or use me in another channel."
    )


def undelivered_text(progress: JobProgress, channel_id: int | None) -> str:
    """Told to the requester, privately, when the job's channel and its interaction both refuse us."""
    made, total = progress.count(GenerationStatus.SUCCEEDED), len(progress.generations)
    where = f"<#{channel_id}>" if channel_id else "the channel you used"
    return (
        f"I could not post the results of your /imagine job `{progress.job_id}` ({made} of {total} "
        f"image{'s' * (total != 1)} made) in {where}: I am no longer allowed to post there and the command "
        "has expired. Ask a server admin to let me **Send Messages** and **Attach Files** in that channel."
    )
