"""Building the services every front end shares (CLI and Discord): one HTTP session, the provider, the
database and the job runner, opened together and closed in reverse order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from bot.config import Settings
from bot.engine.ports import ImageProvider
from bot.engine.ratelimit import RequestLimiter
from bot.engine.retry import RetryPolicy
from bot.engine.runner import JobRunner
from bot.providers.demo import DemoProvider
from bot.providers.stability import StabilityClient
from bot.quotas import QuotaGate
from bot.storage.database import migrate, open_database
from bot.storage.guild_settings import GuildSettingsRepository
from bot.storage.images import ImageFiles
from bot.storage.jobs import JobRepository
from bot.storage.recorder import JobRecorder
from bot.storage.usage import UsageRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    provider: ImageProvider
    images: ImageFiles
    jobs: JobRepository
    runner: JobRunner
    usage: UsageRepository
    guild_settings: GuildSettingsRepository
    quotas: QuotaGate


@asynccontextmanager
async def open_services(settings: Settings, *, images: ImageFiles | None = None) -> AsyncIterator[Services]:
    async with AsyncExitStack() as stack:
        provider: ImageProvider
        if settings.image_provider == "demo":
            provider = DemoProvider(delay=settings.demo_delay)
        else:
            # Sized to the concurrency we allow: aiohttp's default of 100 connections would queue the rest.
            session = await stack.enter_async_context(
                StabilityClient.create_session(settings.max_concurrent_generations)
            )
            provider = StabilityClient(
                session,
                settings.stability_api_key.reveal(),
                settings.stability_api_base,
                request_timeout=settings.generation_timeout,
            )
        conn = await open_database(settings.database_path)
        stack.push_async_callback(conn.close)
        await migrate(conn)
        jobs = JobRepository(conn, prices=settings.model_credits)
        images = images or ImageFiles(settings.images_dir)
        runner = JobRunner(
            provider,
            images,
            max_concurrent=settings.max_concurrent_generations,
            timeout=settings.generation_timeout,
            retry=RetryPolicy(attempts=settings.generation_attempts),
            # One limiter per API key, shared by every job; the demo provider has no key to protect.
            limiter=RequestLimiter(settings.rate_limit_requests, settings.rate_limit_window)
            if settings.image_provider == "stability"
            else None,
        )
        recorder = JobRecorder(jobs)
        runner.subscribe(recorder)
        # Closed in reverse: stop the jobs, let their last records land, then close the database.
        stack.push_async_callback(recorder.drain)
        stack.push_async_callback(runner.shutdown, settings.shutdown_grace)
        log.info("services ready: provider=%s data=%s", provider.name, settings.data_dir)
        usage, guild_settings = UsageRepository(conn), GuildSettingsRepository(jobs)
        quotas = QuotaGate(usage, guild_settings, settings)
        yield Services(settings, provider, images, jobs, runner, usage, guild_settings, quotas)
