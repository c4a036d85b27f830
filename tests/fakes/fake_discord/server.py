"""FakeDiscord: starts the loopback server, points discord.py at it, and pushes interactions to the bot."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import discord
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.http import Route

from . import payloads
from .gateway import Gateway
from .records import JSON, GuildSpec, InteractionRecord, UserSpec
from .rest import API_PREFIX, build_app
from .state import State

DM_CONTEXT, GUILD_CONTEXT = 1, 0


@contextlib.contextmanager
def patch_discord(rest_base: str, gateway_url: str) -> Iterator[None]:
    """Point discord.py's REST (``Route.BASE``) and gateway (``DEFAULT_GATEWAY``) at a fake; restore after."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = rest_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        Route.BASE = old_base
        DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


class FakeDiscord(State):
    """A Discord REST API + gateway on 127.0.0.1 that a real discord.py client logs in to.

    ``async with FakeDiscord() as fake:`` serves it and (unless ``patch_client=False``) patches discord.py
    for the duration. All recorded state and switches live on the instance (see ``State``).
    """

    def __init__(
        self,
        token: str = "fake-bot-token",
        *,
        guilds: Sequence[GuildSpec] | None = None,
        patch_client: bool = True,
        heartbeat_interval_ms: int = 41_250,
    ) -> None:
        super().__init__(token, guilds)
        self.gateway = Gateway(self, heartbeat_interval_ms)
        self.port = 0
        self.rest_base = ""
        self._patch_client = patch_client
        self._runner: web.AppRunner | None = None
        self._patches = contextlib.ExitStack()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        if exc_type is None and self.internal_errors:
            raise AssertionError("fake Discord hit internal errors:\n" + "\n".join(self.internal_errors))

    async def start(self) -> None:
        self._runner = web.AppRunner(build_app(self, self.gateway.handle), access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.port = sock.getsockname()[1]
        self.cdn_base = f"http://127.0.0.1:{self.port}"
        self.rest_base = self.cdn_base + API_PREFIX
        self.gateway_url = f"ws://127.0.0.1:{self.port}/gateway"
        if self._patch_client:
            self._patches.enter_context(self.patched())

    async def stop(self) -> None:
        self._patches.close()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def patched(self) -> contextlib.AbstractContextManager[None]:
        return patch_discord(self.rest_base, self.gateway_url)

    async def wait_identified(self, timeout: float = 5.0) -> None:
        """Wait until IDENTIFY is answered (READY + GUILD_CREATE sent).

        discord.py serves interactions from here on; on_ready only fires ~2 s later, so don't wait for it.
        """
        await self.wait_for(lambda fake: fake.gateway.active is not None, timeout, what="gateway IDENTIFY")

    @contextlib.asynccontextmanager
    async def running(self, client: discord.Client) -> AsyncIterator[discord.Client]:
        """Log ``client`` in, connect it, wait for IDENTIFY; on exit close it with nothing left pending."""
        await client.login(self.token)
        connection = asyncio.create_task(client.connect(), name="fake-discord-client")
        try:
            await self.wait_identified()
            yield client
        finally:
            await client.close()
            await connection
            # discord.py leaves its delayed on_ready task pending if closed within ~2 s of connecting.
            ready_task = client._connection._ready_task
            if ready_task is not None and not ready_task.done():
                ready_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ready_task

    async def request_reconnect(self) -> None:
        await self.gateway.request_reconnect()

    def add_user(self, username: str, *, global_name: str | None = None) -> UserSpec:
        spec = UserSpec(self.ids(), username, global_name=global_name)
        self.users[spec.id] = spec
        return spec

    # -- pushing interactions -------------------------------------------------------------------------

    async def push_slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        option_types: Mapping[str, int] | None = None,
        subcommand: str | None = None,
        user_id: int | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        dm: bool = False,
        app_permissions: int | None = None,
        member_permissions: int | None = None,
        locale: str = "en-US",
        resolved: JSON | None = None,
        focused: str | None = None,
    ) -> InteractionRecord:
        """Push a CHAT_INPUT INTERACTION_CREATE (or autocomplete with ``focused``) to the bot.

        Option types come from ``option_types``, else the synced command schema, else the Python value.
        """
        guild_id = None if dm else guild_id or (self.guild_of(channel_id) if channel_id else self.guild_id)
        command = self._synced_command(name, guild_id)
        schema = command.get("options") if command else None
        if subcommand is not None:
            sub = next((o for o in schema or [] if o["name"] == subcommand), None)
            schema = sub.get("options") if sub else None
        built = payloads.command_options(options or {}, schema, option_types)
        for option in built:
            if option["name"] == focused:
                option["focused"] = True
        if subcommand is not None:
            built = [{"name": subcommand, "type": payloads.OPTION_SUB_COMMAND, "options": built}]
        data: JSON = {
            "id": command["id"] if command else str(self.ids()),
            "name": name,
            "type": 1,
            "options": built,
        }
        if command and "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        if resolved is not None:
            data["resolved"] = resolved
        return await self._push(
            4 if focused else 2, name, data,
            user_id=user_id, guild_id=guild_id, channel_id=channel_id, app_permissions=app_permissions,
            member_permissions=member_permissions, locale=locale,
        )  # fmt: skip

    async def push_component(
        self,
        custom_id: str,
        message_id: int,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        user_id: int | None = None,
        app_permissions: int | None = None,
        member_permissions: int | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Push a MESSAGE_COMPONENT interaction for a component on a message the bot sent (2 = button)."""
        message = self.message(message_id)
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        record = await self._push(
            3, custom_id, data,
            user_id=user_id, guild_id=message.guild_id, channel_id=message.channel_id,
            app_permissions=app_permissions, member_permissions=member_permissions, locale=locale,
            message=message_id,
        )  # fmt: skip
        return record

    def _synced_command(self, name: str, guild_id: int | None) -> JSON | None:
        candidates = [*self.guild_commands.get(guild_id or 0, []), *self.global_commands]
        return next((c for c in candidates if c["name"] == name and c.get("type", 1) == 1), None)

    async def _push(
        self,
        kind: int,
        name: str,
        data: JSON,
        *,
        user_id: int | None,
        guild_id: int | None,
        channel_id: int | None,
        app_permissions: int | None,
        member_permissions: int | None,
        locale: str,
        message: int | None = None,
    ) -> InteractionRecord:
        user = self.users[user_id or self.user_id]
        if guild_id is None:
            channel_id = channel_id or self.dm_channel_for(user.id)
        else:
            channel_id = channel_id or self.guilds[guild_id].channels[0].id
        denied = channel_id in self.denied_channels
        default_app = payloads.READ_ONLY_PERMISSIONS if denied else payloads.DEFAULT_PERMISSIONS
        interaction_id, token = self.ids(), payloads.new_token()
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "channel": self.channel_payload(channel_id),
            "locale": locale,
            "app_permissions": str(default_app if app_permissions is None else app_permissions),
            "entitlements": [],
            "attachment_size_limit": self.upload_limit,
        }
        if guild_id is None:
            payload.update(
                user=payloads.user(user), context=DM_CONTEXT, authorizing_integration_owners={"0": "0"}
            )
        else:
            guild = self.guilds[guild_id]
            perms = guild.everyone_permissions if member_permissions is None else member_permissions
            payload.update(
                guild_id=str(guild_id),
                guild={"id": str(guild_id), "locale": guild.preferred_locale, "features": []},
                guild_locale=guild.preferred_locale,
                member=payloads.member(user, permissions=perms),
                context=GUILD_CONTEXT,
                authorizing_integration_owners={"0": str(guild_id)},
            )
        if message is not None:
            payload["message"] = self.render(self.message(message))
        record = InteractionRecord(
            interaction_id, token, kind, name, guild_id, channel_id, user.id, payload, time.monotonic(),
            component_message_id=message,
        )  # fmt: skip
        self.interactions[interaction_id] = record
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        self.notify()
        return record
