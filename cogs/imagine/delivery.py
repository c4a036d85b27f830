"""Getting one job's progress and images to Discord.

One progress message, edited only when its text changes and never more often than `min_edit_interval`;
each image posted the moment it is on disk. Until shortly before the interaction token expires (15 min),
both go through the interaction; after that — or as soon as Discord says the token is gone — through the
channel, which has no such limit.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import discord

from bot.engine.events import Event, GenerationSucceeded, JobFinished
from bot.engine.progress import GenerationState
from bot.engine.runner import JobHandle
from bot.imaging import CannotFit, fit_image
from bot.storage.images import EXTENSIONS, slug
from bot.storage.jobs import JobRepository
from bot.tasks import spawn
from cogs.imagine import render

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
TOKEN_LIFETIME = 15 * 60.0
TOKEN_MARGIN = 60.0  # switch to the channel this long before the token dies
MAX_UPLOADS_PER_JOB = 4
UNKNOWN_MESSAGE, INVALID_TOKEN, MISSING_PERMISSIONS = 10008, 50027, 50013
TOO_LARGE = 40005


@dataclass(frozen=True)
class DeliveryConfig:
    min_edit_interval: float = 1.5
    token_lifetime: float = TOKEN_LIFETIME
    token_margin: float = TOKEN_MARGIN
    wall_clock: Callable[[], float] = time.time  # seconds since the epoch, as Discord's timestamps


class JobDelivery:
    def __init__(
        self,
        interaction: discord.Interaction,
        handle: JobHandle,
        jobs: JobRepository,
        config: DeliveryConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_done: Callable[[str], object] | None = None,
    ) -> None:
        self.interaction = interaction
        self.handle = handle
        self.jobs = jobs
        self.config = config
        self.clock = clock
        self.wall_clock = config.wall_clock
        self.channel_id = interaction.channel_id
        self.token_deadline = interaction.created_at.timestamp() + config.token_lifetime - config.token_margin
        self.token_usable = True
        self._progress_id: int | None = None  # known after the first edit of the deferred response
        self._progress_via: Literal["original", "followup", "channel"] = "original"
        self._dirty = asyncio.Event()
        self._finished = False
        self._last_text = ""
        self._last_edit = float("-inf")
        self._uploads: set[asyncio.Task[None]] = set()
        self._upload_slots = asyncio.Semaphore(MAX_UPLOADS_PER_JOB)
        self.done = asyncio.Event()
        # Images wait for the progress message: Discord turns the first followup after a deferred response
        # into that response, which would put an image where the progress belongs.
        self._progress_shown = asyncio.Event()
        self._on_done = on_done
        self._editor = spawn(self._edit_loop(), name=f"progress-{handle.job_id}")

    @property
    def job_id(self) -> str:
        return self.handle.job_id

    # -- events ---------------------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Called for each event of this job, after the runner folded it into `handle.progress`."""
        if isinstance(event, GenerationSucceeded):
            task = spawn(self._post_image(event.index), name=f"upload-{self.job_id}-{event.index}")
            self._uploads.add(task)
            task.add_done_callback(self._uploads.discard)
        elif isinstance(event, JobFinished):
            self._finished = True
        self._dirty.set()

    # -- the progress message -------------------------------------------------------------------------------

    async def _edit_loop(self) -> None:
        while True:
            await self._dirty.wait()
            wait = self._last_edit + self.config.min_edit_interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)  # rate limiting: let changes pile up into one edit
            self._dirty.clear()
            if self._finished:
                # The summary comes last: after every image is up, so "delivered" is true when it shows.
                while self._uploads:
                    await asyncio.gather(*list(self._uploads), return_exceptions=True)
                await self._show(self._render())
                self.done.set()
                if self._on_done:
                    self._on_done(self.job_id)
                return
            await self._show(self._render())

    def _render(self) -> str:
        return render.progress_text(self.handle.progress, self.clock(), self.wall_clock())

    async def _show(self, text: str) -> None:
        if text == self._last_text:
            return
        self._last_edit = self.clock()
        try:
            await self._edit_progress(text)
            self._last_text = text
        except discord.HTTPException as exc:
            log.warning("job %s: progress update failed: %s %s", self.job_id, exc.status, exc.text)
        finally:
            self._progress_shown.set()

    async def _edit_progress(self, text: str) -> None:
        try:
            if await self._edit_existing(text):
                return
        except discord.NotFound:
            log.info("job %s: the progress message was deleted; posting a new one", self.job_id)
        await self._post_new_progress(text)

    async def _edit_existing(self, text: str) -> bool:
        """Edit the progress message where it lives; False when there is none to edit."""
        if self._use_interaction() and self._progress_via != "channel":
            try:
                if self._progress_via == "original":
                    message = await self.interaction.edit_original_response(
                        content=text, allowed_mentions=NO_MENTIONS
                    )
                    if self._progress_id is None:
                        self._progress_id = message.id
                        await self._remember_delivery()
                else:
                    assert self._progress_id is not None
                    await self.interaction.followup.edit_message(
                        self._progress_id, content=text, allowed_mentions=NO_MENTIONS
                    )
                return True
            except discord.HTTPException as exc:
                if not self._token_gone(exc):
                    raise
        if self._progress_id is None:
            return False
        # A message the interaction created is an ordinary channel message: it outlives the token.
        partial = self._channel().get_partial_message(self._progress_id)
        await partial.edit(content=text, allowed_mentions=NO_MENTIONS)
        return True

    async def _post_new_progress(self, text: str) -> None:
        try:
            message = await self._channel().send(text, allowed_mentions=NO_MENTIONS)
            self._progress_via = "channel"
        except discord.Forbidden:
            if not self._use_interaction():
                raise
            message = await self.interaction.followup.send(text, allowed_mentions=NO_MENTIONS, wait=True)
            self._progress_via = "followup"
        self._progress_id = message.id
        await self._remember_delivery()

    async def _remember_delivery(self) -> None:
        assert self._progress_id is not None
        await self.jobs.set_delivery(
            self.job_id,
            interaction_token=self.interaction.token,
            expires_at=self.token_deadline + self.config.token_margin,
            progress_channel_id=self.channel_id,
            progress_message_id=self._progress_id,
        )

    # -- images ---------------------------------------------------------------------------------------------

    async def _post_image(self, index: int) -> None:
        await self._progress_shown.wait()
        async with self._upload_slots:
            state = self.handle.progress.generations[index]
            assert state.image is not None
            text = render.caption(self.handle.progress, state)
            limit = self.interaction.filesize_limit
            try:
                message = await self._send_file(state, text, limit)
            except (discord.HTTPException, CannotFit, OSError) as exc:
                log.error("job %s: could not post image %d: %s", self.job_id, index + 1, exc)
                return
            await self.jobs.mark_posted(self.job_id, index, message.id)
            log.info("job %s: posted image %d (message %s)", self.job_id, index + 1, message.id)

    async def _send_file(self, state: GenerationState, text: str, limit: int) -> discord.Message:
        try:
            return await self._send(text, lambda: self._file_for(state, limit))
        except discord.HTTPException as exc:
            if exc.status != 413 and exc.code != TOO_LARGE:
                raise
            log.info(
                "job %s: image %d refused as too large; sending it smaller", self.job_id, state.index + 1
            )
            return await self._send(text, lambda: self._file_for(state, limit // 2))

    async def _file_for(self, state: GenerationState, limit: int) -> discord.File:
        image = state.image
        assert image is not None
        name = f"{state.index + 1:02d}-{slug(state.prompt)}"
        if image.size_bytes <= limit:
            return discord.File(image.path, filename=name + EXTENSIONS.get(image.format, ".png"))
        fitted = await asyncio.to_thread(fit_image, image.path, limit)
        log.info(
            "job %s: image %d re-encoded from %d to %d bytes to fit the upload limit",
            self.job_id,
            state.index + 1,
            image.size_bytes,
            len(fitted.data),
        )
        return discord.File(io.BytesIO(fitted.data), filename=name + fitted.extension)

    async def _send(self, text: str, make_file: Callable[[], Awaitable[discord.File]]) -> discord.Message:
        # discord.py closes a file once sent, even on failure: each attempt gets a fresh one.
        if self._use_interaction():
            try:
                return await self.interaction.followup.send(
                    text, file=await make_file(), allowed_mentions=NO_MENTIONS, wait=True
                )
            except discord.HTTPException as exc:
                if not self._token_gone(exc):
                    raise
        return await self._channel().send(text, file=await make_file(), allowed_mentions=NO_MENTIONS)

    # -- where to send --------------------------------------------------------------------------------------

    def _use_interaction(self) -> bool:
        if self.token_usable and self.wall_clock() >= self.token_deadline:
            log.info("job %s: interaction token about to expire; continuing in the channel", self.job_id)
            self.token_usable = False
        return self.token_usable

    def _token_gone(self, exc: discord.HTTPException) -> bool:
        if exc.code == INVALID_TOKEN or exc.status == 401:
            log.info("job %s: interaction token expired; continuing in the channel", self.job_id)
            self.token_usable = False
            return True
        return False

    def _channel(self) -> discord.PartialMessageable:
        assert self.channel_id is not None
        return self.interaction.client.get_partial_messageable(self.channel_id)

    async def wait_delivered(self) -> None:
        await self.done.wait()
