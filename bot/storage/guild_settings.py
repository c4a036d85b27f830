"""Each server's /imagine-settings, as `GuildSettings`; stored as JSON in the guild_settings table."""

from __future__ import annotations

from bot.quotas import GuildSettings
from bot.storage.jobs import JobRepository


class GuildSettingsRepository:
    """Typed access to the guild_settings rows, whose SQL lives with the other job tables' in
    `JobRepository`. A server without a row has the defaults."""

    def __init__(self, jobs: JobRepository) -> None:
        self._jobs = jobs

    async def get(self, guild_id: int) -> GuildSettings:
        return GuildSettings.from_json(await self._jobs.get_guild_settings(guild_id))

    async def put(self, guild_id: int, settings: GuildSettings) -> GuildSettings:
        """Store `settings` (only what differs from the defaults); returns them, for chaining."""
        await self._jobs.put_guild_settings(guild_id, settings.to_json())
        return settings
