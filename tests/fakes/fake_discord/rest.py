"""The REST side: app assembly, the middleware every API call goes through, login/command/channel routes."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import payloads
from .bodies import PAYLOAD_KEY, Body, read_body, read_json
from .faults import (
    DiscordError,
    RouteInfo,
    error_response,
    invalid_webhook_token,
    json_response,
    missing_permissions,
    no_content,
    unknown_channel,
    unknown_message,
)
from .interaction_routes import InteractionRoutes
from .records import JSON, MessageRecord, RestCall
from .state import State

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(state: State, gateway_handler: Handler) -> web.Application:
    app = web.Application(middlewares=[_api_middleware(state)], client_max_size=256 * 1024 * 1024)
    app.add_routes(CoreRoutes(state).routes())
    app.add_routes(InteractionRoutes(state).routes(API_PREFIX))
    app.router.add_get("/gateway", gateway_handler)
    app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", _cdn_handler(state))
    app.router.add_route("*", "/{tail:.*}", _unknown_handler(state))  # last: catches unknown routes
    return app


def _template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None or resource.canonical == "/{tail:.*}":
        return "UNKNOWN"
    template = resource.canonical.removeprefix(API_PREFIX)
    if request.match_info.get("message_id") == "@original":
        template = template.replace("{message_id}", "@original")
    return template


def _api_middleware(state: State) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        info = RouteInfo(request.method, _template(request), request.path.removeprefix(API_PREFIX))
        try:
            response = await _serve(state, request, handler, info)
        except DiscordError as error:
            response = error_response(error)
        except Exception:
            log.exception("fake Discord failed on %s %s", info.method, info.path)
            state.internal_errors.append(f"{info.method} {info.path}: {traceback.format_exc()}")
            response = error_response(DiscordError(400, 0, "fake Discord bug, see fake.internal_errors"))
        call = RestCall(
            info.method,
            info.template,
            info.path,
            dict(request.query),
            response.status,
            time.monotonic(),
            request.get(PAYLOAD_KEY),
        )
        state.record_call(call)
        return response

    return middleware


async def _serve(state: State, request: web.Request, handler: Handler, info: RouteInfo) -> web.StreamResponse:
    fault = state.take_fault(info)
    if fault is not None:
        raise fault
    token = request.match_info.get("token")
    if token is None and request.headers.get("Authorization") != f"Bot {state.token}":
        raise DiscordError(401, 0, "401: Unauthorized")
    if token is not None and token in state.expired_tokens:
        raise invalid_webhook_token()
    return await handler(request)


def _unknown_handler(state: State) -> Handler:
    async def unknown(request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix(API_PREFIX)
        log.warning("fake Discord has no route for %s %s", request.method, request.path)
        state.unknown_routes.append(RouteInfo(request.method, "UNKNOWN", path))
        raise DiscordError(404, 0, f"404: Not Found (fake Discord has no route {request.method} {path})")

    return unknown


def _cdn_handler(state: State) -> Handler:
    async def attachment(request: web.Request) -> web.StreamResponse:
        wanted = int(request.match_info["attachment_id"])
        for message in state.messages.values():
            for record in message.attachments:
                if record.id == wanted:
                    return web.Response(body=record.data, content_type=record.content_type)
        return web.Response(status=404)

    return attachment


class CoreRoutes:
    """Login, gateway discovery, command sync, DMs and channel messages."""

    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        p = API_PREFIX
        commands = p + "/applications/{application_id}/commands"
        guild_commands = p + "/applications/{application_id}/guilds/{guild_id}/commands"
        message = p + "/channels/{channel_id}/messages/{message_id}"
        return [
            web.get(p + "/users/@me", self.get_me),
            web.get(p + "/oauth2/applications/@me", self.get_application),
            web.get(p + "/gateway", self.get_gateway),
            web.get(p + "/gateway/bot", self.get_gateway_bot),
            web.get(commands, self.get_commands),
            web.put(commands, self.put_commands),
            web.get(guild_commands, self.get_commands),
            web.put(guild_commands, self.put_commands),
            web.post(p + "/users/@me/channels", self.create_dm),
            web.get(p + "/channels/{channel_id}", self.get_channel),
            web.post(p + "/channels/{channel_id}/typing", self.typing),
            web.get(p + "/channels/{channel_id}/messages", self.get_messages),
            web.post(p + "/channels/{channel_id}/messages", self.create_message),
            web.get(message, self.get_message),
            web.patch(message, self.edit_message),
            web.delete(message, self.delete_message),
        ]

    async def get_me(self, request: web.Request) -> web.Response:
        return json_response(payloads.current_user(self.state.bot_user))

    async def get_application(self, request: web.Request) -> web.Response:
        state = self.state
        return json_response(payloads.application(state.application_id, state.bot_user, state.default_user))

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.state.gateway_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.state.gateway_url, "shards": 1, "session_start_limit": limit})

    def _command_list(self, request: web.Request) -> tuple[list[JSON], int | None]:
        if int(request.match_info["application_id"]) != self.state.application_id:
            raise DiscordError(404, 10002)
        if "guild_id" not in request.match_info:
            return self.state.global_commands, None
        guild_id = int(request.match_info["guild_id"])
        if guild_id not in self.state.guilds:
            raise DiscordError(403, 50001)
        return self.state.guild_commands.setdefault(guild_id, []), guild_id

    async def get_commands(self, request: web.Request) -> web.Response:
        commands, _ = self._command_list(request)
        return json_response(commands)

    async def put_commands(self, request: web.Request) -> web.Response:
        current, guild_id = self._command_list(request)
        received = await read_json(request)
        old_ids = {(c["name"], c.get("type", 1)): c["id"] for c in current}
        synced = []
        for command in received:
            key = (command["name"], command.get("type", 1))
            stored = {
                **command,
                "id": old_ids.get(key) or str(self.state.ids()),
                "application_id": str(self.state.application_id),
                "version": str(self.state.ids()),
                "type": command.get("type", 1),
                "description": command.get("description", ""),
            }
            if guild_id is not None:
                stored["guild_id"] = str(guild_id)
            synced.append(stored)
        current[:] = synced
        self.state.notify()
        return json_response(synced)

    async def create_dm(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        user_id = int(body["recipient_id"])
        if user_id not in self.state.users:
            raise DiscordError(400, 50007)
        return json_response(self.state.channel_payload(self.state.dm_channel_for(user_id)))

    def _channel(self, request: web.Request, *, writing: bool) -> int:
        channel_id = int(request.match_info["channel_id"])
        if not self.state.has_channel(channel_id):
            raise unknown_channel()
        if writing and channel_id in self.state.denied_channels:
            raise missing_permissions()
        return channel_id

    def _message(self, request: web.Request, channel_id: int) -> MessageRecord:
        record = self.state.messages.get(int(request.match_info["message_id"]))
        if record is None or record.channel_id != channel_id or record.deleted or record.ephemeral:
            raise unknown_message()
        return record

    async def _body(self, request: web.Request) -> Body:
        return await read_body(request, self.state.upload_limit)

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self.state.channel_payload(self._channel(request, writing=False)))

    async def typing(self, request: web.Request) -> web.Response:
        self._channel(request, writing=True)
        return no_content()

    async def create_message(self, request: web.Request) -> web.Response:
        channel_id = self._channel(request, writing=True)
        record = self.state.create_message(channel_id, "channel", await self._body(request))
        return json_response(self.state.render(record))

    async def get_messages(self, request: web.Request) -> web.Response:
        """Channel history, as Discord pages it: newest first, at most `limit` (1-100, default 50)."""
        channel_id = self._channel(request, writing=False)
        if channel_id in self.state.denied_channels:
            raise missing_permissions()
        if channel_id in self.state.history_denied_channels:
            raise DiscordError(403, 50001)
        try:
            query = {
                k: int(request.query[k]) for k in ("limit", "before", "after", "around") if k in request.query
            }
        except ValueError:
            raise DiscordError(400, 50035) from None
        limit = query.pop("limit", 50)
        if not 1 <= limit <= 100 or len(query) > 1:
            raise DiscordError(400, 50035)
        page = self.state.history(channel_id, limit, **query)
        return json_response([self.state.render(m) for m in page])

    async def get_message(self, request: web.Request) -> web.Response:
        record = self._message(request, self._channel(request, writing=False))
        return json_response(self.state.render(record))

    async def edit_message(self, request: web.Request) -> web.Response:
        record = self._message(request, self._channel(request, writing=True))
        self.state.edit_message(record, await self._body(request), f"PATCH {_template(request)}")
        return json_response(self.state.render(record))

    async def delete_message(self, request: web.Request) -> web.Response:
        record = self._message(request, self._channel(request, writing=True))
        self.state.delete_message(record)
        return no_content()
