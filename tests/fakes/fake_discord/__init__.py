"""A fake Discord (REST + gateway) on loopback for end-to-end tests with a real discord.py client.

Typical use (see tests/test_fake_discord.py)::

    async with FakeDiscord() as fake:  # serves on 127.0.0.1 and patches discord.py until exit
        await bot.login(fake.token)
        connection = asyncio.create_task(bot.connect())
        await fake.wait_identified()
        pushed = await fake.push_slash_command("imagine", {"prompt": "a cat"})
        await fake.wait_for(lambda f: f.interaction(pushed.id).original is not None)
        await bot.close()
        await connection
"""

from .faults import DiscordError, EditRateLimit, FaultRule, RouteInfo, RouteMatcher
from .payloads import DEFAULT_PERMISSIONS, READ_ONLY_PERMISSIONS
from .records import (
    EPHEMERAL,
    LOADING,
    AttachmentRecord,
    CallbackType,
    ChannelSpec,
    EditRecord,
    GuildSpec,
    InteractionRecord,
    MessageRecord,
    RestCall,
    UserSpec,
)
from .server import FakeDiscord, patch_discord

__all__ = [
    "DEFAULT_PERMISSIONS",
    "EPHEMERAL",
    "LOADING",
    "READ_ONLY_PERMISSIONS",
    "AttachmentRecord",
    "CallbackType",
    "ChannelSpec",
    "DiscordError",
    "EditRateLimit",
    "EditRecord",
    "FakeDiscord",
    "FaultRule",
    "GuildSpec",
    "InteractionRecord",
    "MessageRecord",
    "RestCall",
    "RouteInfo",
    "RouteMatcher",
    "UserSpec",
    "patch_discord",
]
