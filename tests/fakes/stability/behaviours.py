"""Scriptable behaviours of the fake Stability server: what to do with one generation request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Succeed:
    """Answer normally (after validation). ``latency`` None → the fake's default latency.

    ``image`` replaces the served bytes for this answer (served as-is, whatever ``output_format`` says).
    """

    latency: float | None = None
    finish_reason: str = "SUCCESS"
    image: bytes | None = None


@dataclass(frozen=True, slots=True)
class Filtered:
    """A generated-but-blurred image with ``finish-reason: CONTENT_FILTERED`` (charged like a success)."""

    latency: float | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """Answer with this status code after ``latency`` seconds, without validating the request.

    ``body`` None → the real API's usual body for that code on that route family (JSON error for 4xx/500,
    an HTML page for 502/503/504). A dict is sent as JSON, str/bytes as ``text/html`` unless ``headers``
    sets a content-type.
    """

    code: int
    body: Mapping[str, Any] | str | bytes | None = None
    headers: Mapping[str, str] | None = None
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer: the request stays open until the client gives up or the fake shuts down."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Kill the connection mid-answer.

    ``after_bytes`` an int → send a 200 status line and headers (with the full content-length), then that
    many bytes of the image, then close the connection (the client sees ``ClientPayloadError``).
    ``after_bytes`` None → close the connection before sending anything (``ServerDisconnectedError``).
    """

    after_bytes: int | None = 0
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class BadBody:
    """Answer ``status`` with an arbitrary content-type and body (HTML from a proxy, garbage 'PNG', empty)."""

    content_type: str = "text/html"
    body: bytes | str = b""
    status: int = 200
    headers: Mapping[str, str] | None = None
    latency: float = 0.0


def Slow(seconds: float) -> Succeed:
    """A normal answer that takes ``seconds``."""
    return Succeed(latency=seconds)


Behaviour = Succeed | Filtered | Status | Hang | Drop | BadBody

__all__ = ["BadBody", "Behaviour", "Drop", "Filtered", "Hang", "Slow", "Status", "Succeed"]
