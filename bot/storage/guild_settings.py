"""Each server's /imagine-settings, as `GuildSettings`; stored as JSON in the guild_settings table."""

from __future__ import annotations

from bot.quotas import GuildSettings
from bot.storage.jobs import JobRepository


class GuildSettingsRepository:
    """Typed access to the guild_settings rows, whose SQL lives with the other job tables' in
    `JobRepository`. A server without a row has the defaults.

    Read on every /imagine before it is acknowledged, so they are cached: this process is the only writer
    (through `put`), and a busy database must not make Discord's 3-second deadline slip."""

    def __init__(self, jobs: JobRepository) -> None:
        self._jobs = jobs
        self._cache: dict[int, GuildSettings] = {}

    async def get(self, guild_id: int) -> GuildSettings:
        cached = self._cache.get(guild_id)
        if cached is None:
            cached = GuildSettings.from_json(await self._jobs.get_guild_settings(guild_id))
            self._cache[guild_id] = cached
        return cached

    async def put(self, guild_id: int, settings: GuildSettings) -> GuildSettings:
        """Store `settings` (only what differs from the defaults); returns them, for chaining."""
        await self._jobs.put_guild_settings(guild_id, settings.to_json())
        self._cache[guild_id] = settings
        return settings
