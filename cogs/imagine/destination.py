"""Where one job's messages go: its interaction's webhook while the token lives, else its channel.

A fresh job has a live `discord.Interaction`. A job recovered after a restart has only what was recorded —
the interaction token and its expiry, the channel, the progress message — and reaches the same webhook
again with `discord.Webhook.partial`: Discord knows an interaction webhook by application id and token,
not by the process that received the interaction. A message the interaction created is an ordinary channel
message, so once the token is gone the channel can still edit it and post new ones.

When neither works — the channel refuses us (50013, missing permissions) and the token is gone (50027, or
past its expiry) — `tell_requester` reaches the user who asked, in this order:

1. an ephemeral followup, while the token may still be alive (we stop using it a margin before it expires,
   and a webhook can fail for reasons other than the token): only the requester sees it;
2. a direct message (they may refuse DMs from server members: 50007);
3. a warning in the operator's log naming the job, the channel and the user.

Images that could not be posted stay on disk and in the database as not posted; a restart within the
resume window tries them again. Before it does, `find_posted` looks for them in the channel: a crash between
Discord accepting an image and the bot recording it leaves an image posted but recorded as not posted, and
an interaction webhook has no nonce for Discord to drop a second post.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import discord

from bot.storage.jobs import Delivery, JobRecord

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
TOKEN_LIFETIME = 15 * 60.0
TOKEN_MARGIN = 60.0  # switch to the channel this long before the token dies
INVALID_TOKEN = 50027
HISTORY_LIMIT = 100  # messages read when looking for images already posted: one request
CLOCK_SKEW = 60.0  # seconds our clock may run ahead of Discord's: history is read from this long before


@dataclass(frozen=True)
class DeliveryConfig:
    min_edit_interval: float = 1.5
    token_lifetime: float = TOKEN_LIFETIME
    token_margin: float = TOKEN_MARGIN
    wall_clock: Callable[[], float] = time.time  # seconds since the epoch, as Discord's timestamps
    shutdown_timeout: float = 10.0  # at shutdown, how long a job's last uploads and edit may take


class Destination:
    """The paths to one job's requester: the interaction webhook (with its token's lifetime) and the
    channel. It remembers when Discord told us the token is gone, so it is never tried again."""

    def __init__(
        self,
        client: discord.Client,
        job_id: str,
        *,
        channel_id: int | None,
        guild_id: int | None,
        requester_id: str,
        config: DeliveryConfig,
        webhook: discord.Webhook | None,
        token: str | None,
        token_expires_at: float | None,
        interaction: discord.Interaction | None = None,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.requester_id = requester_id
        self.config = config
        self.webhook = webhook
        self.token = token
        self.token_expires_at = token_expires_at or 0.0
        self.interaction = interaction  # only for a fresh job: edits the deferred response
        self.token_rejected = webhook is None or token is None
        self._announced_switch = False

    @classmethod
    def for_interaction(
        cls, interaction: discord.Interaction, job_id: str, requester_id: str, config: DeliveryConfig
    ) -> Destination:
        return cls(
            interaction.client,
            job_id,
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            requester_id=requester_id,
            config=config,
            webhook=interaction.followup,
            token=interaction.token,
            token_expires_at=interaction.created_at.timestamp() + config.token_lifetime,
            interaction=interaction,
        )

    @classmethod
    def for_record(cls, client: discord.Client, record: JobRecord, config: DeliveryConfig) -> Destination:
        """The paths a recorded job left: the webhook only while its recorded token may still be valid."""
        delivery = record.delivery
        token, expires_at = delivery.interaction_token, delivery.interaction_expires_at
        webhook = None
        alive = token is not None and expires_at is not None and config.wall_clock() < expires_at
        if alive and token is not None and client.application_id is not None:
            webhook = discord.Webhook.partial(client.application_id, token, client=client)
            # An interaction's webhook (as `Interaction.followup` builds it): may send ephemeral messages.
            webhook.type = discord.WebhookType.application
        return cls(
            client,
            record.id,
            channel_id=delivery.progress_channel_id or record.place.channel_id,
            guild_id=record.place.guild_id,
            requester_id=record.requester.id,
            config=config,
            webhook=webhook,
            token=token if webhook else None,
            token_expires_at=expires_at,
        )

    def recorded(self, progress_message_id: int | None) -> Delivery:
        """What `JobRepository.set_delivery` keeps, so a restarted bot can carry on from here."""
        return Delivery(
            self.token if not self.token_rejected else None,
            self.token_expires_at if not self.token_rejected else None,
            self.channel_id,
            progress_message_id,
        )

    # -- which path -----------------------------------------------------------------------------------------

    def use_interaction(self) -> bool:
        """The webhook, until a margin before the token expires (or Discord said it is gone)."""
        if self.token_rejected:
            return False
        if self.config.wall_clock() >= self.token_expires_at - self.config.token_margin:
            if not self._announced_switch:
                log.info("job %s: interaction token about to expire; continuing in the channel", self.job_id)
                self._announced_switch = True
            return False
        return True

    def token_may_live(self) -> bool:
        """Past the margin but not known dead: worth a try when the channel refuses us."""
        return not self.token_rejected and self.config.wall_clock() < self.token_expires_at

    def token_gone(self, exc: discord.HTTPException) -> bool:
        """Whether `exc` says the token is dead; if so it is never used again."""
        if exc.code == INVALID_TOKEN or exc.status == 401:
            log.info("job %s: interaction token expired; continuing in the channel", self.job_id)
            self.token_rejected = True
            return True
        return False

    def interaction_webhook(self) -> discord.Webhook:
        assert self.webhook is not None
        return self.webhook

    def channel(self) -> discord.PartialMessageable:
        if self.channel_id is None:
            raise discord.ClientException(f"job {self.job_id} has no channel to post in")
        return self.client.get_partial_messageable(self.channel_id, guild_id=self.guild_id)

    async def find_posted(self, since: float, captions: Mapping[str, int]) -> dict[int, int]:
        """Our image messages in the channel posted after `since` (wall clock) whose caption ends with one
        of `captions` (caption end -> image index): {index: message id}. One request, the first
        `HISTORY_LIMIT` messages; nothing found when the history cannot be read (the images are posted
        again: a duplicate beats a lost image)."""
        me = self.client.user
        if me is None or self.channel_id is None:
            return {}
        after = datetime.datetime.fromtimestamp(since - CLOCK_SKEW, datetime.UTC)
        found: dict[int, int] = {}
        try:
            async for message in self.channel().history(limit=HISTORY_LIMIT, after=after):
                if message.author.id != me.id or not message.attachments:
                    continue
                index = next((i for end, i in captions.items() if message.content.endswith(end)), None)
                if index is not None:
                    found.setdefault(index, message.id)
        except discord.HTTPException as exc:  # 50001 / 50013: no Read Message History here
            log.info(
                "job %s: could not read channel %s to find images already posted (%s %s); posting them",
                self.job_id,
                self.channel_id,
                exc.status,
                exc.code,
            )
            return {}
        except Exception as exc:  # the lookup only prevents a duplicate: never let it stop the posting
            log.info("job %s: could not look for images already posted (%r); posting them", self.job_id, exc)
            return {}
        return found

    @property
    def filesize_limit(self) -> int:
        if self.interaction is not None:
            return self.interaction.filesize_limit
        guild = self.client.get_guild(self.guild_id) if self.guild_id else None
        return guild.filesize_limit if guild else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES

    # -- when nothing else works ----------------------------------------------------------------------------

    async def tell_requester(self, text: str) -> str:
        """Reach the requester privately (see the module's docstring); returns how: "ephemeral", "dm" or
        "log"."""
        if self.webhook is not None and self.token_may_live():
            try:
                await self.webhook.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS, wait=True)
                return "ephemeral"
            except discord.HTTPException as exc:
                self.token_gone(exc)
                log.info("job %s: ephemeral notice failed: %s %s", self.job_id, exc.status, exc.text)
        if self.requester_id.isdigit():
            try:
                dm = await self.client.create_dm(discord.Object(int(self.requester_id)))
                await dm.send(text, allowed_mentions=NO_MENTIONS)
                return "dm"
            except discord.HTTPException as exc:
                log.info("job %s: direct message failed: %s %s", self.job_id, exc.status, exc.text)
        log.warning(
            "job %s: could not deliver to channel %s nor tell user %s: check the bot's permissions there",
            self.job_id,
            self.channel_id,
            self.requester_id,
        )
        return "log"
