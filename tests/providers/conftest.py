"""A fake Stability server on loopback, a client session, and a StabilityClient pointed at the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.engine.models import GenerationRequest
from bot.engine.options import GenerationOptions
from bot.providers.stability import StabilityClient
from tests.fakes.stability import FakeStability

# Distinctive, so a leak anywhere (repr, message, log) is found by a plain substring search.
KEY = "sk-test-5ecret-KEY-d0-not-leak"

MakeClient = Callable[..., StabilityClient]


def generation(
    prompt: str = "a lighthouse at dawn", *, seed: int = 1234, **options: Any
) -> GenerationRequest:
    return GenerationRequest(prompt, seed, GenerationOptions(**options))


@pytest.fixture
async def fake() -> AsyncIterator[FakeStability]:
    async with FakeStability(api_key=KEY) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def make_client(session: aiohttp.ClientSession, fake: FakeStability) -> MakeClient:
    def make(**kwargs: Any) -> StabilityClient:
        kwargs.setdefault("request_timeout", 5)
        return StabilityClient(
            session, kwargs.pop("api_key", KEY), kwargs.pop("base_url", fake.base_url), **kwargs
        )

    return make
