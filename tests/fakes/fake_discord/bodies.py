"""Reading message bodies (JSON, or multipart with payload_json + files[n]) and applying them to records."""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from .faults import DiscordError
from .records import JSON, AttachmentRecord, MessageRecord

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_ATTACHMENTS = 10
MAX_EMBED_TITLE = 256
MAX_EMBED_DESCRIPTION = 4096
MAX_EMBED_TOTAL = 6000

_FILE_FIELD = re.compile(r"files\[(\d+)\]")
PAYLOAD_KEY = web.RequestKey("fake_discord_payload", object)  # what the REST log records as the body


@dataclass(frozen=True)
class Upload:
    index: int
    filename: str
    data: bytes
    content_type: str | None


@dataclass(frozen=True)
class Body:
    payload: JSON
    uploads: tuple[Upload, ...] = ()


async def read_body(request: web.Request, upload_limit: int) -> Body:
    """Parse a message body; an upload over ``upload_limit`` bytes is refused as Discord does (413/40005)."""
    if request.content_type.startswith("multipart/"):
        body = await _read_multipart(request, upload_limit)
    else:
        body = Body(await read_json(request) or {})
    request[PAYLOAD_KEY] = body.payload
    return body


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    payload = json.loads(raw) if raw else None
    request[PAYLOAD_KEY] = payload
    return payload


async def _read_multipart(request: web.Request, upload_limit: int) -> Body:
    payload: JSON = {}
    uploads: list[Upload] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "payload_json":
            payload = json.loads(await part.text())
            continue
        match = _FILE_FIELD.fullmatch(part.name or "")
        if match is None:
            continue
        data = await part.read(decode=False)
        if len(data) > upload_limit:
            raise DiscordError(413, 40005)
        uploads.append(
            Upload(
                int(match.group(1)), part.filename or "unknown", bytes(data), part.headers.get("Content-Type")
            )
        )
    return Body(payload, tuple(uploads))


def resolve_attachments(
    payload: JSON, uploads: Sequence[Upload], existing: Sequence[AttachmentRecord], new_id: Callable[[], int]
) -> tuple[list[AttachmentRecord], tuple[AttachmentRecord, ...]]:
    """Attachments after a create/edit: the ``attachments`` list keeps old ones by id and names new ones by
    file index; without the key, existing attachments stay. Returns (all attachments, new ones)."""
    by_index = {u.index: u for u in uploads}
    used: set[int] = set()
    result: list[AttachmentRecord] = []
    added: list[AttachmentRecord] = []
    if "attachments" in payload:
        for entry in payload["attachments"] or []:
            ident = int(entry["id"])
            kept = next((a for a in existing if a.id == ident), None)
            if kept is not None:
                result.append(kept)
            elif ident in by_index and ident not in used:
                used.add(ident)
                added.append(_to_attachment(by_index[ident], new_id(), entry.get("description")))
    else:
        result.extend(existing)
    added.extend(_to_attachment(u, new_id(), None) for u in uploads if u.index not in used)
    return [*result, *added], tuple(added)


def _to_attachment(upload: Upload, attachment_id: int, description: str | None) -> AttachmentRecord:
    guessed = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
    return AttachmentRecord(
        attachment_id, upload.filename, upload.data, guessed, upload.content_type, description
    )


def apply_fields(record: MessageRecord, payload: JSON, attachments: list[AttachmentRecord]) -> None:
    """Apply the message fields present in ``payload`` (absent keys leave the field unchanged)."""
    if "content" in payload:
        record.content = payload["content"] or ""
    if "embeds" in payload:
        record.embeds = list(payload["embeds"] or [])
    if "components" in payload:
        record.components = list(payload["components"] or [])
    if "allowed_mentions" in payload:
        record.allowed_mentions = payload["allowed_mentions"]
    record.attachments = attachments


def validate(payload: JSON, attachments: Sequence[AttachmentRecord], *, creating: bool = False) -> None:
    """The limits Discord enforces with 400 / 50035 Invalid Form Body (50006 for an empty new message)."""
    if (
        creating
        and not (payload.get("content") or payload.get("embeds") or attachments or payload.get("components"))
        and not (payload.get("sticker_ids") or payload.get("poll"))
    ):
        raise DiscordError(400, 50006)
    errors: dict[str, Any] = {}
    content = payload.get("content") or ""
    if len(content) > MAX_CONTENT:
        errors["content"] = _form_error("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")
    embeds = payload.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        errors["embeds"] = _form_error("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
    for index, embed in enumerate(embeds):
        title, description = embed.get("title") or "", embed.get("description") or ""
        if len(title) > MAX_EMBED_TITLE or len(description) > MAX_EMBED_DESCRIPTION:
            errors[f"embeds.{index}"] = _form_error("BASE_TYPE_MAX_LENGTH", "Embed field too long.")
    if sum(_embed_text_length(e) for e in embeds) > MAX_EMBED_TOTAL:
        errors["embeds"] = _form_error("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    if len(attachments) > MAX_ATTACHMENTS:
        errors["attachments"] = _form_error("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ATTACHMENTS} or fewer.")
    if errors:
        raise DiscordError(400, 50035, errors=errors)


def _embed_text_length(embed: JSON) -> int:
    texts = [embed.get("title"), embed.get("description")]
    texts.append((embed.get("footer") or {}).get("text"))
    texts.append((embed.get("author") or {}).get("name"))
    for embed_field in embed.get("fields") or []:
        texts.extend((embed_field.get("name"), embed_field.get("value")))
    return sum(len(t or "") for t in texts)


def _form_error(code: str, message: str) -> JSON:
    return {"_errors": [{"code": code, "message": message}]}
