"""Interaction callbacks and the interaction webhook (followups, @original)."""

from __future__ import annotations

import time

from aiohttp import web

from .bodies import Body, read_body
from .faults import DiscordError, invalid_webhook_token, json_response, no_content, unknown_message
from .records import EPHEMERAL, JSON, LOADING, CallbackType, InteractionRecord, MessageRecord
from .state import State

_MESSAGE_CALLBACKS = {
    CallbackType.CHANNEL_MESSAGE,
    CallbackType.DEFERRED_CHANNEL_MESSAGE,
    CallbackType.UPDATE_MESSAGE,
}


class InteractionRoutes:
    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self, prefix: str) -> list[web.RouteDef]:
        webhook = prefix + "/webhooks/{application_id}/{token}"
        message = webhook + "/messages/{message_id}"
        return [
            web.post(prefix + "/interactions/{interaction_id}/{token}/callback", self.callback),
            web.post(webhook, self.followup),
            web.get(message, self.get_message),
            web.patch(message, self.edit_message),
            web.delete(message, self.delete_message),
        ]

    async def _body(self, request: web.Request) -> Body:
        return await read_body(request, self.state.upload_limit)

    async def callback(self, request: web.Request) -> web.Response:
        record = self.state.interactions.get(int(request.match_info["interaction_id"]))
        if record is None or record.token != request.match_info["token"]:
            raise DiscordError(404, 10062)
        body = await self._body(request)
        if record.acknowledged:
            raise DiscordError(400, 40060)
        now = time.monotonic()
        deadline = self.state.ack_deadline
        if deadline is not None and now - record.pushed_at > deadline:
            record.late_callback_at = now
            raise DiscordError(404, 10062)
        callback_type = CallbackType(int(body.payload["type"]))
        data: JSON = body.payload.get("data") or {}
        message = self._respond(record, callback_type, Body(data, body.uploads))
        record.callback_type, record.callback_data, record.callback_at = callback_type, data, now
        self.state.notify()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return no_content()
        return json_response(self._callback_answer(record, callback_type, message))

    def _respond(self, record: InteractionRecord, kind: CallbackType, body: Body) -> MessageRecord | None:
        state = self.state
        if kind is CallbackType.CHANNEL_MESSAGE:
            record.original = state.create_message(
                record.channel_id, "interaction_original", body, interaction=record.id
            )
        elif kind is CallbackType.DEFERRED_CHANNEL_MESSAGE:
            flags = int(body.payload.get("flags") or 0) & EPHEMERAL
            thinking = Body({"content": "", "flags": flags})
            record.original = state.create_message(
                record.channel_id,
                "interaction_original",
                thinking,
                interaction=record.id,
                extra_flags=LOADING,
            )
        elif kind in (CallbackType.DEFERRED_UPDATE_MESSAGE, CallbackType.UPDATE_MESSAGE):
            # For a component interaction, "the original" is the message the component is on.
            if record.component_message_id is None:
                raise DiscordError(400, 50035, "Interaction has no message to update")
            record.original = state.message(record.component_message_id)
            if kind is CallbackType.UPDATE_MESSAGE:
                state.edit_message(
                    record.original, body, "POST /interactions/{interaction_id}/{token}/callback"
                )
        elif kind is CallbackType.AUTOCOMPLETE_RESULT:
            record.autocomplete_choices = list(body.payload.get("choices") or [])
        return record.original

    def _callback_answer(
        self, record: InteractionRecord, kind: CallbackType, message: MessageRecord | None
    ) -> JSON:
        interaction: JSON = {"id": str(record.id), "type": record.type}
        resource: JSON = {"type": int(kind)}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
            interaction["response_message_loading"] = message.loading
            interaction["response_message_ephemeral"] = message.ephemeral
            if kind in _MESSAGE_CALLBACKS:
                resource["message"] = self.state.render(message)
        return {"interaction": interaction, "resource": resource}

    def _interaction(self, request: web.Request) -> InteractionRecord:
        if int(request.match_info["application_id"]) != self.state.application_id:
            raise DiscordError(404, 10015)
        record = self.state.interaction_by_token(request.match_info["token"])
        if record is None:
            raise invalid_webhook_token()
        return record

    def _message(self, request: web.Request, record: InteractionRecord) -> MessageRecord:
        wanted = request.match_info["message_id"]
        if wanted == "@original":
            message = record.original
        else:
            message = self.state.messages.get(int(wanted))
            if message is not record.original and message not in record.followups:
                message = None
        if message is None or message.deleted:
            raise unknown_message()
        return message

    async def followup(self, request: web.Request) -> web.Response:
        record = self._interaction(request)
        body = await self._body(request)
        if not record.acknowledged:
            raise DiscordError(404, 10015)
        original = record.original
        if (
            self.state.followup_completes_deferred
            and original is not None
            and original.loading
            and not original.deleted
        ):
            self.state.complete_deferred(original, body)
            message = original
        else:
            message = self.state.create_message(record.channel_id, "followup", body, interaction=record.id)
        record.followups.append(message)
        self.state.notify()
        if request.query.get("wait") not in ("1", "true", "True"):
            return no_content()
        return json_response(self.state.render(message))

    async def get_message(self, request: web.Request) -> web.Response:
        message = self._message(request, self._interaction(request))
        return json_response(self.state.render(message))

    async def edit_message(self, request: web.Request) -> web.Response:
        record = self._interaction(request)
        message = self._message(request, record)
        body = await self._body(request)
        route = "PATCH /webhooks/{application_id}/{token}/messages/" + (
            "@original" if request.match_info["message_id"] == "@original" else "{message_id}"
        )
        self.state.edit_message(message, body, route)
        return json_response(self.state.render(message))

    async def delete_message(self, request: web.Request) -> web.Response:
        message = self._message(request, self._interaction(request))
        self.state.delete_message(message)
        return no_content()
