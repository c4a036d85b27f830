"""Small pieces several cogs share: private replies that ping nobody, who may manage a server, the ids
of the channel a command was used in, Discord timestamps and message links, typed-in job ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import discord
from discord import app_commands

from bot.engine.models import JOB_ID_LENGTH
from bot.engine.options import MODELS

NO_MENTIONS = discord.AllowedMentions.none()
MESSAGE_LIMIT = 2000


async def reply(
    interaction: discord.Interaction, content: str, *, view: discord.ui.View | None = None
) -> None:
    """A private answer (only the user sees it) in which no mention pings anyone."""
    if view is None:
        await interaction.response.send_message(content, ephemeral=True, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.send_message(
            content, ephemeral=True, allowed_mentions=NO_MENTIONS, view=view
        )


def can_manage_guild(interaction: discord.Interaction) -> bool:
    """The user has Manage Server (or Administrator) in the server the interaction comes from."""
    if interaction.guild_id is None:
        return False
    permissions = interaction.permissions
    return permissions.manage_guild or permissions.administrator


def channel_ids(interaction: discord.Interaction) -> tuple[int | None, ...]:
    """The channel the command was used in, then what contains it (a thread's channel, a channel's
    category): an allowed channel also allows its threads, an allowed category its channels."""
    channel = interaction.channel
    ids: list[int | None] = [interaction.channel_id]
    if isinstance(channel, discord.Thread):
        ids.append(channel.parent_id)
        channel = channel.parent
    if isinstance(channel, discord.abc.GuildChannel):
        ids.append(channel.category_id)
    return tuple(ids)


def timestamp(seconds: float, style: str = "R") -> str:
    """Shown in each reader's own time zone and language by Discord: R "2 hours ago", f a full date."""
    return f"<t:{int(seconds)}:{style}>"


def message_link(guild_id: int | None, channel_id: int | None, message_id: int | None) -> str | None:
    if channel_id is None or message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def parse_job_id(text: str) -> str | None:
    """A job id as typed: any case, with spaces, `backticks` or a leading # around it; None when it cannot
    be one (ids are letters and digits only)."""
    cleaned = text.strip().strip("`#").strip().lower()
    if len(cleaned) != JOB_ID_LENGTH or not cleaned.isascii() or not cleaned.isalnum():
        return None
    return cleaned


def fit(header: list[str], lines: list[str], limit: int = MESSAGE_LIMIT) -> str:
    """`header` and as many of `lines` as fit in one message, with a note of how many were left out."""
    kept = list(lines)
    while kept:
        left_out = len(lines) - len(kept)
        tail = [f"… and {left_out} more"] if left_out else []
        text = "\n".join([*header, *kept, *tail])
        if len(text) <= limit:
            return text
        kept.pop()
    return "\n".join([*header, f"… and {len(lines)} more"] if lines else header)[:limit]


def choices(values: Iterable[str], labels: Mapping[str, str] | None = None) -> list[app_commands.Choice[str]]:
    """Slash-command choices for `values`, each shown by its label when one is given."""
    return [app_commands.Choice(name=(labels or {}).get(v, v), value=v) for v in values]


def model_choices() -> list[app_commands.Choice[str]]:
    """Every model, shown with its list price so whoever picks one sees what it costs."""
    return choices(MODELS, {name: f"{m.label} ({m.credits:g} credits)" for name, m in MODELS.items()})
