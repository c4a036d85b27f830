"""Pure builders for the JSON objects Discord sends: users, guilds, messages, interactions.

Fields are the ones discord.py 2.7 reads (several are required keys there, e.g. member ``flags``,
interaction ``attachment_size_limit``, application ``interactions_endpoint_url``).
"""

from __future__ import annotations

import datetime
import itertools
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .records import JSON, AttachmentRecord, ChannelSpec, GuildSpec, MessageRecord, UserSpec

DISCORD_EPOCH_MS = 1_420_070_400_000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
DEFAULT_PERMISSIONS = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)
READ_ONLY_PERMISSIONS = DEFAULT_PERMISSIONS & ~(
    SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | SEND_MESSAGES_IN_THREADS
)

# Application command option types, for inferring them from Python values.
OPTION_SUB_COMMAND = 1
OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN, OPTION_NUMBER = 3, 4, 5, 10


class SnowflakeFactory:
    """Time-based, strictly increasing snowflakes, so ``discord.utils.snowflake_time`` makes sense."""

    def __init__(self) -> None:
        self._increment = itertools.count()

    def __call__(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._increment) & 0x3FFFFF)


def new_token() -> str:
    return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def user(spec: UserSpec) -> JSON:
    return {
        "id": str(spec.id),
        "username": spec.username,
        "discriminator": "0",
        "global_name": spec.global_name,
        "avatar": None,
        "bot": spec.bot,
        "public_flags": 0,
    }


def current_user(spec: UserSpec) -> JSON:
    return {**user(spec), "verified": True, "mfa_enabled": False, "flags": 0, "locale": "en-US"}


def member(spec: UserSpec, *, permissions: int | None = None) -> JSON:
    data: JSON = {
        "user": user(spec),
        "roles": [],
        "nick": None,
        "avatar": None,
        "joined_at": iso_now(),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def everyone_role(guild: GuildSpec) -> JSON:
    return {
        "id": str(guild.id),
        "name": "@everyone",
        "permissions": str(guild.everyone_permissions),
        "position": 0,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "icon": None,
        "unicode_emoji": None,
        "flags": 0,
    }


def guild_channel(spec: ChannelSpec, guild_id: int) -> JSON:
    return {
        "id": str(spec.id),
        "type": spec.type,
        "guild_id": str(guild_id),
        "name": spec.name,
        "position": spec.position,
        "permission_overwrites": [],
        "parent_id": None,
        "nsfw": False,
        "topic": None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
    }


def dm_channel(channel_id: int, recipient: UserSpec) -> JSON:
    return {"id": str(channel_id), "type": 1, "recipients": [user(recipient)], "last_message_id": None}


def guild_create(guild: GuildSpec, bot: UserSpec) -> JSON:
    members = [member(bot), *(member(m) for m in guild.members)]
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": guild.preferred_locale,
        "system_channel_id": str(guild.channels[0].id) if guild.channels else None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "features": [],
        "roles": [everyone_role(guild)],
        "emojis": [],
        "stickers": [],
        "channels": [guild_channel(c, guild.id) for c in guild.channels],
        "threads": [],
        "members": members,
        "member_count": len(members),
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "large": False,
        "lazy": True,
        "unavailable": False,
        "joined_at": iso_now(),
        "application_id": None,
        "max_members": 500000,
        "incidents_data": None,
    }


def ready(
    *,
    bot: UserSpec,
    application_id: int,
    guild_ids: Iterable[int],
    session_id: str,
    resume_url: str,
    shard: Any,
) -> JSON:
    return {
        "v": 10,
        "user": current_user(bot),
        "guilds": [{"id": str(gid), "unavailable": True} for gid in guild_ids],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_url,
        "application": {"id": str(application_id), "flags": 0},
        "shard": shard or [0, 1],
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
        "user_settings": {},
        "auth": {},
    }


def application(application_id: int, bot: UserSpec, owner: UserSpec) -> JSON:
    return {
        "id": str(application_id),
        "name": bot.username,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot": user(bot),
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": user(owner),
        "team": None,
        "verify_key": "0" * 64,
        "flags": 0,
        "rpc_origins": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,  # set => discord.py warns it will receive no interactions
        "role_connections_verification_url": None,
        "tags": [],
        "integration_types_config": {"0": {}},
        "approximate_guild_count": 1,
    }


def attachment(record: AttachmentRecord, channel_id: int, cdn_base: str) -> JSON:
    url = f"{cdn_base}/attachments/{channel_id}/{record.id}/{record.filename}"
    data: JSON = {
        "id": str(record.id),
        "filename": record.filename,
        "size": record.size,
        "url": url,
        "proxy_url": url,
        "content_type": record.content_type,
    }
    if record.description is not None:
        data["description"] = record.description
    return data


def message(record: MessageRecord, *, author: UserSpec, application_id: int, cdn_base: str) -> JSON:
    data: JSON = {
        "id": str(record.id),
        "channel_id": str(record.channel_id),
        "type": 0 if record.origin == "channel" else 20,
        "author": user(author),
        "content": record.content,
        "timestamp": iso_now(),
        "edited_timestamp": iso_now() if record.edits else None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [attachment(a, record.channel_id, cdn_base) for a in record.attachments],
        "embeds": record.embeds,
        "components": record.components,
        "pinned": False,
        "flags": record.flags,
    }
    if record.interaction_id is not None:
        data["webhook_id"] = str(application_id)
        data["application_id"] = str(application_id)
    return data


def command_options(
    values: Mapping[str, Any], schema: list[JSON] | None, explicit: Mapping[str, int] | None = None
) -> list[JSON]:
    """Option objects with the option type given explicitly, else from the synced schema, else inferred."""
    known = {o["name"]: int(o["type"]) for o in schema or []}
    options = []
    for name, value in values.items():
        option_type = (explicit or {}).get(name) or known.get(name) or _infer_option_type(value)
        options.append({"name": name, "type": option_type, "value": value})
    return options


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return OPTION_BOOLEAN
    if isinstance(value, int):
        return OPTION_INTEGER
    if isinstance(value, float):
        return OPTION_NUMBER
    return OPTION_STRING
