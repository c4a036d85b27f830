"""Getting one job's progress and images to Discord.

One progress message, edited only when its text changes and never more often than `min_edit_interval`;
each image posted the moment it is on disk, its message id recorded right after, and never posted twice.
Which path each message takes (the interaction while its token lives, the channel after) is the
`Destination`'s business. The same class serves a job submitted a second ago and one recovered after a
restart (`recover`); at shutdown, `close` finishes a finished job's delivery or says the job will resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import discord

from bot.engine.events import Event, GenerationSucceeded, JobFinished
from bot.engine.models import GenerationStatus
from bot.engine.progress import GenerationState, JobProgress
from bot.imaging import CannotFit, fit_image
from bot.storage.images import EXTENSIONS, slug
from bot.storage.jobs import JobRepository
from bot.tasks import spawn
from cogs.imagine import buttons, render
from cogs.imagine.destination import NO_MENTIONS, TOKEN_LIFETIME, TOKEN_MARGIN, DeliveryConfig, Destination
from cogs.imagine.progress_message import ProgressMessage, ProgressVia

__all__ = [
    "NO_MENTIONS",
    "TOKEN_LIFETIME",
    "TOKEN_MARGIN",
    "DeliveryConfig",
    "FinishedJob",
    "JobDelivery",
    "JobSource",
    "ProgressVia",
]

log = logging.getLogger(__name__)

MAX_UPLOADS_PER_JOB = 4
QUEUE_REFRESH = 5.0  # seconds between refreshes of a waiting job's place in the queue
TOO_LARGE = 40005


class JobSource(Protocol):
    """Where a delivery reads the job's progress: a running `JobHandle`, or a `FinishedJob`."""

    @property
    def job_id(self) -> str: ...

    @property
    def progress(self) -> JobProgress: ...


@dataclass(frozen=True)
class FinishedJob:
    """A job nothing runs any more (found finished, or failed as interrupted, after a restart)."""

    job_id: str
    progress: JobProgress


class JobDelivery:
    def __init__(
        self,
        job: JobSource,
        destination: Destination,
        jobs: JobRepository,
        config: DeliveryConfig,
        *,
        progress_message_id: int | None = None,
        progress_via: ProgressVia = "original",
        posted: Iterable[int] = (),
        clock: Callable[[], float] = time.monotonic,
        on_done: Callable[[str], object] | None = None,
        spoiler: bool = False,
        places: Callable[[], Mapping[int, int]] | None = None,
    ) -> None:
        self.job = job
        self.destination = destination
        self.jobs = jobs
        self.config = config
        self.clock = clock
        self.wall_clock = config.wall_clock
        self.message = ProgressMessage(
            job.job_id, destination, jobs, message_id=progress_message_id, via=progress_via
        )
        self._needs_record = True  # token, expiry and progress message: kept before the first edit
        self._dirty = asyncio.Event()
        self._finished = False
        self._last_text = ""
        self._last_edit = float("-inf")
        self._posted: set[int] = set(posted)  # indexes whose image is on Discord (this run or before)
        self._not_posted: set[int] = set()
        self._uploading: set[int] = set()
        self._uploads: set[asyncio.Task[None]] = set()
        self._upload_slots = asyncio.Semaphore(MAX_UPLOADS_PER_JOB)
        self.done = asyncio.Event()
        # Images wait for the progress message: Discord turns the first followup after a deferred response
        # into that response, which would put an image where the progress belongs.
        self._progress_shown = asyncio.Event()
        self._on_done = on_done
        self.spoiler = spoiler  # the server posts images behind a spoiler
        self._places = places  # where this job's waiting prompts are in the queue
        self._editor = spawn(self._edit_loop(), name=f"progress-{job.job_id}")

    @property
    def job_id(self) -> str:
        return self.job.job_id

    # -- events ---------------------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Called for each event of this job, after the runner folded it into the job's progress."""
        if isinstance(event, GenerationSucceeded):
            self._spawn_upload(event.index)
        elif isinstance(event, JobFinished):
            self._finished = True
        self._dirty.set()

    def recover(self, unposted: Iterable[int], *, created_at: float) -> None:
        """Carry on for a job of an earlier run (created at `created_at`, wall clock): post the images it
        made but never recorded as posted (unless the channel shows they were), bring the progress message up
        to date, and finish with the summary if nothing runs the job any more."""
        indexes = [i for i in unposted if i not in self._posted]
        if indexes:
            self._track_upload(
                spawn(self._post_recovered(indexes, created_at), name=f"recover-{self.job_id}")
            )
        if self.job.progress.finished:
            self._finished = True
        self._dirty.set()

    async def close(self) -> None:
        """At shutdown, after the runner stopped: a finished job gets its last images and summary; an
        unfinished one (left recorded, to resume) says so. Whatever `shutdown_timeout` cuts off is posted
        at the next start."""
        try:
            async with asyncio.timeout(self.config.shutdown_timeout):
                if self._finished:
                    await self.done.wait()
                    return
                self._editor.cancel()
                await asyncio.gather(self._editor, return_exceptions=True)
                while self._uploads:
                    await asyncio.gather(*list(self._uploads), return_exceptions=True)
                await self._show(render.paused_text(self.job.progress, self.clock(), self.wall_clock()))
        except TimeoutError:
            log.warning("job %s: delivery cut short by shutdown; the rest follows at restart", self.job_id)
        finally:
            self._done()

    async def wait_delivered(self) -> None:
        await self.done.wait()

    def _done(self) -> None:
        if not self.done.is_set():
            self.done.set()
            if self._on_done:
                self._on_done(self.job_id)

    # -- the progress message -------------------------------------------------------------------------------

    async def _edit_loop(self) -> None:
        while True:
            if self._places is not None and self.job.progress.count(GenerationStatus.QUEUED):
                # Other jobs' prompts starting move ours up the queue: refresh now and then, cheaply (an
                # unchanged text costs no edit).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), QUEUE_REFRESH)
            else:
                await self._dirty.wait()
            wait = self._last_edit + self.config.min_edit_interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)  # rate limiting: let changes pile up into one edit
            self._dirty.clear()
            if self._needs_record:
                self._needs_record = False
                await self.message.remember()
            if self._finished:
                try:
                    await self._finish()
                finally:
                    self._done()
                return
            await self._show(self._render())

    async def _finish(self) -> None:
        if not self._progress_shown.is_set():
            # A job recovered finished: bring its message up to date before the images go up.
            await self._show(self._render(running=True))
        # The summary comes last: after every image is up, so "delivered" is true when it shows.
        while self._uploads:
            await asyncio.gather(*list(self._uploads), return_exceptions=True)
        if not await self._show(self._render()):
            await self.destination.tell_requester(
                render.undelivered_text(self.job.progress, self.destination.channel_id)
            )

    def _render(self, *, running: bool = False) -> str:
        progress = self.job.progress
        if running:  # the totals, not the summary: what is not posted yet is not "delivered"
            progress = replace(progress, finished_at=None)
        places = self._places() if self._places is not None and not progress.finished else None
        return render.progress_text(
            progress, self.clock(), self.wall_clock(), not_posted=len(self._not_posted), places=places
        )

    async def _show(self, text: str) -> bool:
        """Show `text` in the progress message; False when no path to it works."""
        if text == self._last_text:
            return True
        self._last_edit = self.clock()
        try:
            await self.message.edit(text, buttons.progress_view(self.job.progress))
            self._last_text = text
            return True
        except (discord.HTTPException, discord.ClientException) as exc:
            log.warning("job %s: progress update failed: %s", self.job_id, exc)
            return False
        finally:
            self._progress_shown.set()

    # -- images ---------------------------------------------------------------------------------------------

    def _spawn_upload(self, index: int) -> None:
        if index in self._posted or index in self._uploading:
            return
        self._uploading.add(index)
        self._track_upload(spawn(self._post_image(index), name=f"upload-{self.job_id}-{index}"))

    def _track_upload(self, task: asyncio.Task[None]) -> None:
        # The summary and `close` wait for every task in here.
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)

    async def _post_recovered(self, indexes: list[int], created_at: float) -> None:
        """An earlier run's images: those already in the channel (it stopped between posting one and
        recording it) are recorded, the others posted. Their uploads join `_uploads` before this ends."""
        total = len(self.job.progress.generations)
        captions = {render.caption_marker(self.job_id, i, total): i for i in indexes}
        found = await self.destination.find_posted(created_at, captions)
        for index in indexes:
            message_id = found.get(index)
            if message_id is None:
                self._spawn_upload(index)
                continue
            self._posted.add(index)
            log.info(
                "job %s: image %d was posted before the restart (message %s)",
                self.job_id,
                index + 1,
                message_id,
            )
            try:
                await self.jobs.mark_posted(self.job_id, index, message_id)
            except Exception:  # on Discord all the same: the next restart looks for it again
                log.exception("job %s: could not record image %d as posted", self.job_id, index + 1)

    async def _post_image(self, index: int) -> None:
        await self._progress_shown.wait()
        async with self._upload_slots:
            progress = self.job.progress
            state = progress.generations[index]
            assert state.image is not None
            text = render.caption(progress, state)
            try:
                message = await self._send_file(state, text, self.destination.filesize_limit)
            except (discord.HTTPException, discord.ClientException, CannotFit, OSError) as exc:
                log.error("job %s: could not post image %d: %s", self.job_id, index + 1, exc)
                self._not_posted.add(index)
                return
            self._posted.add(index)
            try:
                await self.jobs.mark_posted(self.job_id, index, message.id)
            except Exception:  # posted all the same: only a restart could post it twice now
                log.exception("job %s: could not record image %d as posted", self.job_id, index + 1)
            log.info("job %s: posted image %d (message %s)", self.job_id, index + 1, message.id)

    async def _send_file(self, state: GenerationState, text: str, limit: int) -> discord.Message:
        view = buttons.image_view(self.job_id, state.index)
        try:
            return await self._send(text, lambda: self._file_for(state, limit), view)
        except discord.HTTPException as exc:
            if exc.status != 413 and exc.code != TOO_LARGE:
                raise
            # Discord's limit is lower than we were told: aim well under it (and under the file itself, or
            # the same bytes would go again).
            assert state.image is not None
            smaller = min(limit, state.image.size_bytes) // 2
            log.info(
                "job %s: image %d refused as too large; sending it in %d bytes at most",
                self.job_id,
                state.index + 1,
                smaller,
            )
            return await self._send(text, lambda: self._file_for(state, smaller), view)

    async def _file_for(self, state: GenerationState, limit: int) -> discord.File:
        image = state.image
        assert image is not None
        name = f"{state.index + 1:02d}-{slug(state.prompt)}"
        if image.size_bytes <= limit:
            return discord.File(
                image.path, filename=name + EXTENSIONS.get(image.format, ".png"), spoiler=self.spoiler
            )
        fitted = await asyncio.to_thread(fit_image, image.path, limit)
        log.info(
            "job %s: image %d re-encoded from %d to %d bytes to fit the upload limit",
            self.job_id,
            state.index + 1,
            image.size_bytes,
            len(fitted.data),
        )
        return discord.File(io.BytesIO(fitted.data), filename=name + fitted.extension, spoiler=self.spoiler)

    async def _send(
        self, text: str, make_file: Callable[[], Awaitable[discord.File]], view: discord.ui.View
    ) -> discord.Message:
        # discord.py closes a file once sent, even on failure: each attempt gets a fresh one.
        destination = self.destination
        if destination.use_interaction():
            try:
                return await self._send_through_interaction(text, await make_file(), view)
            except discord.HTTPException as exc:
                if not destination.token_gone(exc):
                    raise
        try:
            channel = destination.channel()
            return await channel.send(text, file=await make_file(), allowed_mentions=NO_MENTIONS, view=view)
        except discord.Forbidden:
            if not destination.token_may_live():
                raise
            return await self._send_through_interaction(text, await make_file(), view)

    async def _send_through_interaction(
        self, text: str, file: discord.File, view: discord.ui.View
    ) -> discord.Message:
        webhook = self.destination.interaction_webhook()
        return await webhook.send(text, file=file, allowed_mentions=NO_MENTIONS, wait=True, view=view)
