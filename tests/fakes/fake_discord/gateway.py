"""The gateway websocket: HELLO, heartbeats, IDENTIFY -> READY + GUILD_CREATE, RESUME, pushed dispatches.

Frames are plain-text JSON; discord.py only decompresses binary frames, so ``compress=zlib-stream`` in its
query string is harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from . import payloads
from .records import JSON
from .state import State

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE, RESUME, RECONNECT = 0, 1, 2, 3, 4, 6, 7
REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 8, 9, 10, 11


@dataclass(eq=False)
class GatewaySession:
    ws: web.WebSocketResponse
    session_id: str | None = None
    sequence: int = 0
    identified: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Gateway:
    def __init__(self, state: State, heartbeat_interval_ms: int) -> None:
        self.state = state
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.sessions: list[GatewaySession] = []
        self._last_sequence: dict[str, int] = {}  # session_id -> last dispatched sequence, for RESUME

    @property
    def active(self) -> GatewaySession | None:
        """The most recent identified (or resumed) connection that is still open."""
        live = [s for s in self.sessions if s.identified and not s.ws.closed]
        return live[-1] if live else None

    async def dispatch(self, event: str, data: JSON) -> None:
        session = self.active
        if session is None:
            raise RuntimeError("no identified gateway connection: await fake.wait_identified() first")
        await self._send(session, DISPATCH, data, event)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes and RESUMEs on a new connection."""
        session = self.active
        if session is None:
            raise RuntimeError("no identified gateway connection")
        await self._send(session, RECONNECT, None)

    async def close(self) -> None:
        for session in list(self.sessions):
            await session.ws.close(code=1001, message=b"fake Discord shutting down")

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        session = GatewaySession(ws)
        self.sessions.append(session)
        try:
            await self._send(session, HELLO, {"heartbeat_interval": self.heartbeat_interval_ms})
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    await self._on_frame(session, json.loads(frame.data))
                elif frame.type is WSMsgType.BINARY:
                    log.warning("fake gateway ignores binary frames (ETF is not supported)")
        finally:
            self.sessions.remove(session)
            self.state.notify()
        return ws

    async def _send(self, session: GatewaySession, op: int, data: Any, event: str | None = None) -> None:
        async with session.lock:
            sequence = None
            if op == DISPATCH:
                session.sequence += 1
                sequence = session.sequence
                if session.session_id is not None:
                    self._last_sequence[session.session_id] = sequence
            await session.ws.send_str(json.dumps({"op": op, "d": data, "s": sequence, "t": event}))

    async def _on_frame(self, session: GatewaySession, frame: JSON) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == HEARTBEAT:
            self.state.heartbeat_count += 1
            await self._send(session, HEARTBEAT_ACK, None)
        elif op == IDENTIFY:
            await self._identify(session, data or {})
        elif op == RESUME:
            await self._resume(session, data or {})
        elif op == REQUEST_MEMBERS:
            await self._members_chunk(session, data or {})
        elif op not in (PRESENCE, VOICE):
            log.warning("fake gateway ignores op %s: %s", op, data)

    async def _identify(self, session: GatewaySession, data: JSON) -> None:
        state = self.state
        if data.get("token") != state.token:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return
        session.session_id = secrets.token_hex(16)
        ready = payloads.ready(
            bot=state.bot_user,
            application_id=state.application_id,
            guild_ids=state.guilds,
            session_id=session.session_id,
            resume_url=state.gateway_url,
            shard=data.get("shard"),
        )
        await self._send(session, DISPATCH, ready, "READY")
        for guild in state.guilds.values():
            await self._send(session, DISPATCH, payloads.guild_create(guild, state.bot_user), "GUILD_CREATE")
        # Only now: anything pushed after wait_identified() must follow READY and GUILD_CREATE.
        session.identified = True
        state.identify_payloads.append(data)
        state.notify()

    async def _resume(self, session: GatewaySession, data: JSON) -> None:
        session_id = data.get("session_id")
        if data.get("token") != self.state.token or session_id not in self._last_sequence:
            await self._send(session, INVALID_SESSION, False)
            return
        session.session_id = session_id
        session.sequence = self._last_sequence[session_id]
        await self._send(session, DISPATCH, {}, "RESUMED")
        session.identified = True
        self.state.resume_payloads.append(data)
        self.state.notify()

    async def _members_chunk(self, session: GatewaySession, data: JSON) -> None:
        guild = self.state.guilds.get(int(data.get("guild_id") or 0))
        members = (
            []
            if guild is None
            else [payloads.member(self.state.bot_user), *map(payloads.member, guild.members)]
        )
        chunk = {
            "guild_id": str(data.get("guild_id")),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "nonce": data.get("nonce"),
        }
        await self._send(session, DISPATCH, chunk, "GUILD_MEMBERS_CHUNK")
