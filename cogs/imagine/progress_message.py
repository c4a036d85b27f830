"""A job's one progress message, kept editable whatever happens to it.

It starts as the interaction's deferred response. While the token lives it is edited through the
interaction; after that through the channel, as any message of the bot. Deleted (10008), a new one is
posted in the channel — or through the interaction when the channel refuses us (50013) and the token may
still work. Each time it moves, where it is now is recorded with the token (`set_delivery`), so a restarted
bot edits the same message.
"""

from __future__ import annotations

import logging
from typing import Literal

import discord

from bot.storage.jobs import JobRepository
from cogs.imagine.destination import NO_MENTIONS, Destination

log = logging.getLogger(__name__)

# How the message is edited: the deferred response itself (a fresh job's live interaction), a message of
# the interaction's webhook (also editable through the channel), or a message the bot posted in the channel.
ProgressVia = Literal["original", "webhook", "channel"]


class ProgressMessage:
    def __init__(
        self,
        job_id: str,
        destination: Destination,
        jobs: JobRepository,
        *,
        message_id: int | None,
        via: ProgressVia,
    ) -> None:
        self.job_id = job_id
        self.destination = destination
        self.jobs = jobs
        self.message_id = message_id
        self.via: ProgressVia = via
        self._view = discord.ui.View()  # the buttons under the message, given with each edit

    async def edit(self, text: str, view: discord.ui.View) -> None:
        """Show `text` (and the buttons of `view`); raises `discord.HTTPException` (or `ClientException`)
        when no path works."""
        self._view = view
        try:
            if await self._edit_existing(text):
                return
        except discord.NotFound:
            log.info("job %s: the progress message was deleted; posting a new one", self.job_id)
        await self._post_new(text)

    async def remember(self) -> None:
        """Record the token, its expiry and where the message is, for a restarted bot."""
        recorded = self.destination.recorded(self.message_id)
        try:
            await self.jobs.set_delivery(
                self.job_id,
                interaction_token=recorded.interaction_token,
                expires_at=recorded.interaction_expires_at,
                progress_channel_id=recorded.progress_channel_id,
                progress_message_id=recorded.progress_message_id,
            )
        except Exception:  # the database going away must not stop the delivery itself
            log.exception("job %s: could not record the delivery", self.job_id)

    async def _edit_existing(self, text: str) -> bool:
        """Edit the message where it lives; False when there is none to edit."""
        destination = self.destination
        reachable = self.message_id is not None or destination.interaction is not None
        if self.via != "channel" and reachable and destination.use_interaction():
            try:
                await self._edit_through_interaction(text)
                return True
            except discord.NotFound:
                # After a restart the recorded message may be one the bot posted in the channel, which the
                # webhook does not know: the channel decides whether it is really gone.
                if self.via != "webhook":
                    raise
            except discord.HTTPException as exc:
                if not destination.token_gone(exc):
                    raise
        if self.message_id is None:
            return False
        # A message the interaction created is an ordinary channel message: it outlives the token.
        partial = destination.channel().get_partial_message(self.message_id)
        try:
            await partial.edit(content=text, allowed_mentions=NO_MENTIONS, view=self._view)
        except discord.Forbidden:
            if self.via == "channel" or not destination.token_may_live():
                raise
            await self._edit_through_interaction(text)  # the channel refuses us; the token still works
        return True

    async def _edit_through_interaction(self, text: str) -> None:
        interaction = self.destination.interaction
        if self.via == "original" and interaction is not None:
            message = await interaction.edit_original_response(
                content=text, allowed_mentions=NO_MENTIONS, view=self._view
            )
            if self.message_id != message.id:
                self.message_id = message.id
                await self.remember()
            return
        assert self.message_id is not None  # a webhook or channel message is known by its id
        await self.destination.interaction_webhook().edit_message(
            self.message_id, content=text, allowed_mentions=NO_MENTIONS, view=self._view
        )

    async def _post_new(self, text: str) -> None:
        via: ProgressVia = "channel"
        try:
            message = await self.destination.channel().send(
                text, allowed_mentions=NO_MENTIONS, view=self._view
            )
        except (discord.Forbidden, discord.ClientException):
            if not self.destination.token_may_live():
                raise
            webhook = self.destination.interaction_webhook()
            message = await webhook.send(text, allowed_mentions=NO_MENTIONS, wait=True, view=self._view)
            via = "webhook"
        self.message_id, self.via = message.id, via
        await self.remember()
