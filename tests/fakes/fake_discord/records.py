"""What the fake Discord remembers, so tests can assert on what the bot did.

Every record is plain data: ids are ints (snowflakes), times are ``time.monotonic()`` values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

EPHEMERAL = 1 << 6
LOADING = 1 << 7  # the "Bot is thinking..." state of a deferred response

JSON = dict[str, Any]
Origin = Literal["interaction_original", "followup", "channel"]


class CallbackType(enum.IntEnum):
    """Interaction callback (response) types, as posted to ``/interactions/{id}/{token}/callback``."""

    PONG = 1
    CHANNEL_MESSAGE = 4
    DEFERRED_CHANNEL_MESSAGE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    AUTOCOMPLETE_RESULT = 8
    MODAL = 9
    LAUNCH_ACTIVITY = 12


@dataclass(frozen=True)
class UserSpec:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None


@dataclass(frozen=True)
class ChannelSpec:
    id: int
    name: str
    type: int = 0  # 0 guild text, 1 DM
    position: int = 0


@dataclass(frozen=True)
class GuildSpec:
    id: int
    name: str
    channels: tuple[ChannelSpec, ...]
    members: tuple[UserSpec, ...]
    owner_id: int
    everyone_permissions: int
    preferred_locale: str = "en-US"


@dataclass(frozen=True)
class AttachmentRecord:
    id: int
    filename: str
    data: bytes
    content_type: str  # inferred from the filename, as Discord does
    upload_content_type: str | None  # what the client put on the multipart part
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class EditRecord:
    payload: JSON
    at: float
    route: str  # "METHOD /template"
    uploads: tuple[AttachmentRecord, ...] = ()


@dataclass
class MessageRecord:
    id: int
    channel_id: int
    guild_id: int | None
    origin: Origin
    created_at: float
    payload: JSON  # the creation payload, as received
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    allowed_mentions: JSON | None = None  # the last one received (creation or edit)
    flags: int = 0
    components: list[JSON] = field(default_factory=list)
    interaction_id: int | None = None
    author_id: int | None = None  # None: the bot
    edits: list[EditRecord] = field(default_factory=list)
    deleted: bool = False
    deleted_at: float | None = None
    # Discord turns the first followup after a deferred ("thinking") response into that response.
    completed_by_followup: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    def attachment(self, filename: str) -> AttachmentRecord:
        for attachment in self.attachments:
            if attachment.filename == filename:
                return attachment
        raise KeyError(f"message {self.id} has no attachment {filename!r}")


@dataclass(frozen=True)
class RestCall:
    method: str
    template: str  # e.g. "/webhooks/{application_id}/{token}/messages/@original"
    path: str
    query: dict[str, str]
    status: int
    at: float
    payload: Any = None  # the JSON body (payload_json for multipart), when there was one

    @property
    def route(self) -> str:
        return f"{self.method} {self.template}"


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int  # 2 application command, 3 component, 4 autocomplete
    name: str  # command name, or custom_id for components
    guild_id: int | None
    channel_id: int
    user_id: int
    payload: JSON  # the INTERACTION_CREATE data pushed to the bot
    pushed_at: float
    component_message_id: int | None = None
    callback_type: int | None = None
    callback_data: JSON | None = None
    callback_at: float | None = None
    late_callback_at: float | None = None  # a callback refused because it came after the deadline
    original: MessageRecord | None = None
    followups: list[MessageRecord] = field(default_factory=list)
    autocomplete_choices: list[JSON] | None = None

    @property
    def ack_latency(self) -> float | None:
        """Seconds from the push to the accepted callback."""
        return None if self.callback_at is None else self.callback_at - self.pushed_at

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None
