"""The buttons on a job's messages, which keep working after a restart.

Each button's `custom_id` carries everything needed to act on it (`imagine:<action>:<job>[:<index>]`), and
the cog answers every press from the database, so no view has to be registered or remembered: a press on a
message from last week works the same as one from a second ago. Views are sent already stopped, so
discord.py does not keep one per message in memory.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import discord

from bot.engine.models import GenerationStatus
from bot.engine.progress import JobProgress

PREFIX = "imagine"


class Action(enum.StrEnum):
    CANCEL = "cancel"  # the whole job: queued and running prompts stop
    RETRY_FAILED = "retry"  # a new job of the failed prompts, with their seeds
    REROLL = "reroll"  # a new job of every prompt, with new seeds
    REROLL_ONE = "reroll1"  # a new job of one prompt, with a new seed
    DELETE = "delete"  # the image message

    @property
    def managers_may(self) -> bool:
        """Server managers may cancel jobs and delete images; only the requester spends credits."""
        return self in (Action.CANCEL, Action.DELETE)


@dataclass(frozen=True)
class Press:
    action: Action
    job_id: str
    index: int | None = None

    @property
    def custom_id(self) -> str:
        tail = "" if self.index is None else f":{self.index}"
        return f"{PREFIX}:{self.action}:{self.job_id}{tail}"

    @classmethod
    def parse(cls, custom_id: str) -> Press | None:
        parts = custom_id.split(":")
        if len(parts) not in (3, 4) or parts[0] != PREFIX:
            return None
        try:
            action = Action(parts[1])
            index = int(parts[3]) if len(parts) == 4 else None
        except ValueError:
            return None
        if (index is None) != (action not in (Action.REROLL_ONE, Action.DELETE)):
            return None
        return cls(action, parts[2], index)


def _view(*buttons: discord.ui.Button[discord.ui.View]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(button)
    view.stop()  # only its components are sent: presses are answered by the cog from the database
    return view


def progress_view(progress: JobProgress) -> discord.ui.View:
    """Cancel while the job runs; afterwards Retry failed (when something failed) and Re-roll."""
    job_id = progress.job_id
    if not progress.finished:
        return _view(
            discord.ui.Button(
                label="Cancel",
                emoji="⏹️",
                style=discord.ButtonStyle.secondary,
                custom_id=Press(Action.CANCEL, job_id).custom_id,
            )
        )
    buttons: list[discord.ui.Button[discord.ui.View]] = []
    if progress.count(GenerationStatus.FAILED):
        buttons.append(
            discord.ui.Button(
                label="Retry failed",
                emoji="🔁",
                style=discord.ButtonStyle.primary,
                custom_id=Press(Action.RETRY_FAILED, job_id).custom_id,
            )
        )
    buttons.append(
        discord.ui.Button(
            label="Re-roll",
            emoji="🎲",
            style=discord.ButtonStyle.secondary,
            custom_id=Press(Action.REROLL, job_id).custom_id,
        )
    )
    return _view(*buttons)


def image_view(job_id: str, index: int) -> discord.ui.View:
    return _view(
        discord.ui.Button(
            label="Re-roll this one",
            emoji="🎲",
            style=discord.ButtonStyle.secondary,
            custom_id=Press(Action.REROLL_ONE, job_id, index).custom_id,
        ),
        discord.ui.Button(
            label="Delete",
            emoji="🗑️",
            style=discord.ButtonStyle.danger,
            custom_id=Press(Action.DELETE, job_id, index).custom_id,
        ),
    )
