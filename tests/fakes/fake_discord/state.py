"""The fake's memory: configured guilds, recorded messages/calls/interactions, behaviour switches, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import payloads
from .bodies import Body, apply_fields, resolve_attachments, validate
from .faults import (
    DiscordError,
    EditRateLimit,
    FaultRule,
    RouteInfo,
    RouteMatcher,
    route_matches,
    unknown_message,
)
from .records import (
    EPHEMERAL,
    JSON,
    LOADING,
    ChannelSpec,
    EditRecord,
    GuildSpec,
    InteractionRecord,
    MessageRecord,
    Origin,
    RestCall,
    UserSpec,
)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
Predicate = Callable[[Any], object]  # called with the FakeDiscord; truthy means done


class State:
    """Everything the REST and gateway sides share, plus the test-facing queries and switches."""

    def __init__(self, token: str, guilds: Sequence[GuildSpec] | None = None) -> None:
        self.ids = payloads.SnowflakeFactory()
        self.token = token
        self.application_id = self.ids()
        self.bot_user = UserSpec(self.application_id, "imagine-fake-bot", bot=True)
        self.default_user = UserSpec(self.ids(), "alice", global_name="Alice")
        self.guilds: dict[int, GuildSpec] = {g.id: g for g in guilds or [self._default_guild()]}
        self.users: dict[int, UserSpec] = {
            self.bot_user.id: self.bot_user,
            self.default_user.id: self.default_user,
        }
        self._guild_channels: dict[int, tuple[ChannelSpec, int]] = {}
        for guild in self.guilds.values():
            self.users.update({m.id: m for m in guild.members})
            self._guild_channels.update({c.id: (c, guild.id) for c in guild.channels})
        self._dm_channels: dict[int, UserSpec] = {}
        self.cdn_base = ""  # these two are set once the server has a port
        self.gateway_url = ""

        self.messages: dict[int, MessageRecord] = {}
        self.rest_calls: list[RestCall] = []
        self.interactions: dict[int, InteractionRecord] = {}
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.identify_payloads: list[JSON] = []
        self.resume_payloads: list[JSON] = []
        self.heartbeat_count = 0
        self.rate_limited_count = 0
        self.unknown_routes: list[RouteInfo] = []
        self.internal_errors: list[str] = []

        # Behaviour switches.
        self.upload_limit = DEFAULT_UPLOAD_LIMIT
        self.ack_deadline: float | None = 3.0  # seconds Discord gives to acknowledge an interaction
        self.followup_completes_deferred = True
        self.edit_rate_limit: EditRateLimit | None = None
        self.expired_tokens: set[str] = set()
        self.denied_channels: set[int] = set()
        self.history_denied_channels: set[int] = set()
        self.faults: list[FaultRule] = []
        self._changed = asyncio.Event()

    def _default_guild(self) -> GuildSpec:
        channel = ChannelSpec(self.ids(), "general")
        return GuildSpec(
            id=self.ids(),
            name="Fake Guild",
            channels=(channel, ChannelSpec(self.ids(), "images", position=1)),
            members=(self.default_user,),
            owner_id=self.default_user.id,
            everyone_permissions=payloads.DEFAULT_PERMISSIONS,
        )

    # -- defaults -------------------------------------------------------------------------------------

    @property
    def guild_id(self) -> int:
        return next(iter(self.guilds))

    @property
    def channel_id(self) -> int:
        return self.guilds[self.guild_id].channels[0].id

    @property
    def user_id(self) -> int:
        return self.default_user.id

    @property
    def bot_user_id(self) -> int:
        return self.bot_user.id

    # -- waiting --------------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake every ``wait_for``: state changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self,
        predicate: Predicate,
        timeout: float = 10.0,
        *,
        what: str = "",
    ) -> None:
        """Wait until ``predicate(fake)`` holds; re-checked on every state change.

        A predicate raising LookupError/AttributeError/TypeError counts as "not yet" (e.g. no message yet).
        """
        deadline = asyncio.get_running_loop().time() + timeout
        last_error: Exception | None = None
        while True:
            changed = self._changed
            try:
                if predicate(self):
                    return
            except (LookupError, AttributeError, TypeError) as exc:
                last_error = exc
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                detail = f" (last predicate error: {last_error!r})" if last_error else ""
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or predicate}{detail}\n{self.dump()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def dump(self) -> str:
        lines = [f"identifies={len(self.identify_payloads)} 429s={self.rate_limited_count}"]
        lines += [
            f"  interaction {i.id} {i.name!r} type={i.type} callback={i.callback_type} "
            f"original={i.original.id if i.original else None} followups={[m.id for m in i.followups]}"
            for i in self.interactions.values()
        ]
        lines += [
            f"  message {m.id} ch={m.channel_id} {m.origin} flags={m.flags} content={m.content[:60]!r} "
            f"files={[a.filename for a in m.attachments]} edits={len(m.edits)} deleted={m.deleted}"
            for m in self.messages.values()
        ]
        lines += [f"  {c.method} {c.path} -> {c.status}" for c in self.rest_calls[-25:]]
        lines += [f"  UNKNOWN ROUTE {r.method} {r.path}" for r in self.unknown_routes]
        lines += [f"  FAKE BUG {e}" for e in self.internal_errors]
        return "\n".join(lines)

    # -- queries --------------------------------------------------------------------------------------

    def interaction(self, interaction_id: int) -> InteractionRecord:
        return self.interactions[interaction_id]

    def interaction_by_token(self, token: str) -> InteractionRecord | None:
        return next((i for i in self.interactions.values() if i.token == token), None)

    def message(self, message_id: int) -> MessageRecord:
        return self.messages[message_id]

    def messages_in(self, channel_id: int, *, include_deleted: bool = False) -> list[MessageRecord]:
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel_id and (include_deleted or not m.deleted)
        ]

    def history(
        self,
        channel_id: int,
        limit: int,
        *,
        before: int | None = None,
        after: int | None = None,
        around: int | None = None,
    ) -> list[MessageRecord]:
        """A page of the channel's visible messages as `GET /channels/{id}/messages` returns it, newest
        first: the `limit` newest before `before` (or overall), the `limit` oldest after `after`, or about
        half each side of `around` (itself included)."""
        visible = sorted((m for m in self.messages_in(channel_id) if not m.ephemeral), key=lambda m: m.id)
        if after is not None:
            page = [m for m in visible if m.id > after][:limit]
        elif around is not None:
            older = [m for m in visible if m.id < around]
            newer = [m for m in visible if m.id >= around]
            half = limit // 2
            page = older[max(0, len(older) - half) :] + newer[: limit - half]
        else:
            page = [m for m in visible if before is None or m.id < before][-limit:]
        return page[::-1]

    def calls(self, matcher: RouteMatcher) -> list[RestCall]:
        """REST calls whose route matches (same syntax as ``fail_next``)."""
        return [c for c in self.rest_calls if route_matches(matcher, RouteInfo(c.method, c.template, c.path))]

    # -- behaviour switches ---------------------------------------------------------------------------

    def fail_next(
        self,
        matcher: RouteMatcher,
        status: int = 429,
        code: int | None = None,
        *,
        retry_after: float = 0.05,
        message: str | None = None,
        count: int = 1,
        is_global: bool = False,
    ) -> FaultRule:
        """Answer the next ``count`` requests matching ``matcher`` with an error instead of serving them.

        ``matcher``: a glob on "METHOD /template" or "METHOD /path" (e.g. "PATCH /webhooks/*/@original"),
        a glob starting with "/" for any method, or a callable taking a RouteInfo.
        """
        rule = FaultRule(matcher, status, code, message, retry_after, is_global, count)
        self.faults.append(rule)
        return rule

    def take_fault(self, info: RouteInfo) -> DiscordError | None:
        for rule in self.faults:
            if rule.remaining > 0 and route_matches(rule.matcher, info):
                rule.remaining -= 1
                rule.hits.append(info)
                return rule.to_error()
        return None

    def expire_token(self, token: str) -> None:
        self.expired_tokens.add(token)

    def expire_all_tokens(self) -> None:
        self.expired_tokens.update(i.token for i in self.interactions.values())

    def deny_channel_permissions(self, channel_id: int) -> None:
        self.denied_channels.add(channel_id)

    def allow_channel_permissions(self, channel_id: int) -> None:
        self.denied_channels.discard(channel_id)

    def deny_history(self, channel_id: int) -> None:
        """Reading the channel's history answers 403 / 50001 (no Read Message History); posting works."""
        self.history_denied_channels.add(channel_id)

    def enable_edit_rate_limit(self, limit: int = 5, per: float = 5.0) -> None:
        self.edit_rate_limit = EditRateLimit(limit, per)

    # -- channels -------------------------------------------------------------------------------------

    def guild_of(self, channel_id: int) -> int | None:
        entry = self._guild_channels.get(channel_id)
        return entry[1] if entry else None

    def has_channel(self, channel_id: int) -> bool:
        return channel_id in self._guild_channels or channel_id in self._dm_channels

    def channel_payload(self, channel_id: int) -> JSON:
        if channel_id in self._guild_channels:
            spec, guild_id = self._guild_channels[channel_id]
            return payloads.guild_channel(spec, guild_id)
        return payloads.dm_channel(channel_id, self._dm_channels[channel_id])

    def dm_channel_for(self, user_id: int) -> int:
        for channel_id, recipient in self._dm_channels.items():
            if recipient.id == user_id:
                return channel_id
        channel_id = self.ids()
        self._dm_channels[channel_id] = self.users[user_id]
        return channel_id

    # -- messages -------------------------------------------------------------------------------------

    def render(self, record: MessageRecord) -> JSON:
        author = self.users[record.author_id] if record.author_id is not None else self.bot_user
        return payloads.message(
            record, author=author, application_id=self.application_id, cdn_base=self.cdn_base
        )

    def create_message(
        self,
        channel_id: int,
        origin: Origin,
        body: Body,
        *,
        interaction: int | None = None,
        extra_flags: int = 0,
        author: int | None = None,
    ) -> MessageRecord:
        attachments, _ = resolve_attachments(body.payload, body.uploads, [], self.ids)
        validate(body.payload, attachments, creating=not extra_flags & LOADING)
        record = MessageRecord(
            id=self.ids(),
            channel_id=channel_id,
            guild_id=self.guild_of(channel_id),
            origin=origin,
            created_at=time.monotonic(),
            payload=body.payload,
            flags=int(body.payload.get("flags") or 0) | extra_flags,
            interaction_id=interaction,
            author_id=author,
        )
        apply_fields(record, body.payload, attachments)
        self.messages[record.id] = record
        self.notify()
        return record

    def edit_message(self, record: MessageRecord, body: Body, route: str) -> None:
        if record.deleted:
            raise unknown_message()
        attachments, added = resolve_attachments(body.payload, body.uploads, record.attachments, self.ids)
        validate(body.payload, attachments)
        now = time.monotonic()
        if self.edit_rate_limit is not None:
            retry_after = self.edit_rate_limit.retry_after(record.id, now)
            if retry_after is not None:
                raise DiscordError(429, retry_after=retry_after)
        apply_fields(record, body.payload, attachments)
        self._settle_flags(record, body.payload)
        record.edits.append(EditRecord(body.payload, now, route, added))
        self.notify()

    def complete_deferred(self, record: MessageRecord, body: Body) -> None:
        """The first followup after a deferred response replaces the "thinking" message."""
        attachments, _ = resolve_attachments(body.payload, body.uploads, [], self.ids)
        validate(body.payload, attachments, creating=True)
        apply_fields(record, body.payload, attachments)
        self._settle_flags(record, body.payload)
        record.completed_by_followup = True
        self.notify()

    @staticmethod
    def _settle_flags(record: MessageRecord, payload: JSON) -> None:
        # Ephemerality is fixed at creation; a response stops "thinking" once it has content.
        changeable = int(payload.get("flags") or 0) & ~(EPHEMERAL | LOADING)
        kept = record.flags & EPHEMERAL if "flags" in payload else record.flags & ~LOADING
        record.flags = kept | changeable

    def delete_message(self, record: MessageRecord) -> None:
        if record.deleted:
            raise unknown_message()
        record.deleted = True
        record.deleted_at = time.monotonic()
        self.notify()

    def record_call(self, call: RestCall) -> None:
        self.rest_calls.append(call)
        if call.status == 429:
            self.rate_limited_count += 1
        self.notify()
