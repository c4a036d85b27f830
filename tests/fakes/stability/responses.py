"""Response builders for the fake's routes: error bodies shaped like the real API's, per route family."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from typing import Any, Literal

from aiohttp import web

from .behaviours import BadBody, Status

#: ``v2`` errors carry ``errors: [...]``; ``v1`` (legacy and account routes) carry ``message``.
Family = Literal["v2", "v1"]

_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "request: the request is invalid"),
    401: ("unauthorized", "authorization: missing or invalid API key"),
    402: ("payment_required", "credits: you lack sufficient credits to make this request"),
    403: (
        "content_moderation",
        "Your request was flagged by our content moderation system, as a result your request was denied "
        "and you were not charged.",
    ),
    404: ("not_found", "the requested resource was not found"),
    413: ("payload_too_large", "body: payloads cannot be larger than 10MiB in size"),
    422: ("invalid_request", "Your request was well-formed, but rejected. See the errors field for details."),
    429: (
        "rate_limit_exceeded",
        "You have exceeded the rate limit of 150 requests within a 10 second period, and have been timed "
        "out for 60 seconds.",
    ),
    500: ("internal_error", "An unexpected server error has occurred, please try again later."),
}

_HTML_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def new_id() -> str:
    return secrets.token_hex(16)


def error_payload(
    family: Family, code: int, messages: list[str] | None = None, name: str | None = None
) -> dict[str, Any]:
    default_name, default_message = _DEFAULT_ERRORS.get(code, ("error", f"HTTP {code}"))
    msgs = messages or [default_message]
    if family == "v1":
        return {"id": new_id(), "name": name or default_name, "message": "; ".join(msgs)}
    return {"id": new_id(), "name": name or default_name, "errors": msgs}


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly "application/json" (no charset), like the real API.
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json", headers=headers
    )


def error(
    family: Family,
    code: int,
    messages: list[str] | None = None,
    name: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return json_response(code, error_payload(family, code, messages, name), headers)


def html_page(code: int) -> bytes:
    reason = _HTML_REASONS.get(code, "Error")
    return (
        f"<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


def _raw(status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None) -> web.Response:
    merged = {k.lower(): v for k, v in (headers or {}).items()}
    merged.setdefault("content-type", content_type)
    return web.Response(status=status, body=body, headers=merged)


def status_response(family: Family, behaviour: Status) -> web.Response:
    """The answer for a scripted :class:`Status`."""
    body = behaviour.body
    if body is None:
        if behaviour.code in _HTML_REASONS:
            return _raw(behaviour.code, "text/html", html_page(behaviour.code), behaviour.headers)
        payload: Any = error_payload(family, behaviour.code)
        return _raw(behaviour.code, "application/json", json.dumps(payload).encode(), behaviour.headers)
    if isinstance(body, Mapping):
        payload = {"id": new_id(), **body}
        return _raw(behaviour.code, "application/json", json.dumps(payload).encode(), behaviour.headers)
    data = body.encode() if isinstance(body, str) else body
    return _raw(behaviour.code, "text/html", data, behaviour.headers)


def bad_body_response(behaviour: BadBody) -> web.Response:
    data = behaviour.body.encode() if isinstance(behaviour.body, str) else behaviour.body
    return _raw(behaviour.status, behaviour.content_type, data, behaviour.headers)


def rate_limited(
    family: Family, blocked_for: float, limit: int, window: float, block: float, retry_after: bool
) -> web.Response:
    message = (
        f"You have exceeded the rate limit of {limit} requests within a {window:g} second period, "
        f"and have been timed out for {block:g} seconds."
    )
    headers = {"retry-after": str(max(1, math.ceil(blocked_for)))} if retry_after else None
    return error(family, 429, [message], headers=headers)
