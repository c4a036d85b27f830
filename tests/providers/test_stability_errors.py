"""Every way a Stability request can fail: the right `ProviderError`, no file left, no key shown."""

from __future__ import annotations

import logging
import socket
import traceback
from pathlib import Path
from typing import Any

import pytest

from bot.engine.errors import FailureReason
from bot.providers import errors
from bot.providers.stability import V1_ENGINE
from tests.fakes.stability import BadBody, Behaviour, Drop, FakeStability, Hang, Status
from tests.providers.conftest import KEY, MakeClient, generation

JSON = "application/json"
HTML_PAGE = "<html><head><title>Oops</title></head><body><h1>Something broke</h1></body></html>"


def assert_no_key(exc: BaseException) -> None:
    """Nothing that shows the error (message, repr, user text, the whole chained traceback) holds the key."""
    shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, errors.ProviderError):
        failure = exc.to_failure()
        shown += [exc.detail, exc.user_message or "", failure.message, failure.detail]
    assert not [text for text in shown if KEY in text]


async def fail(
    client_accept: str, make_client: MakeClient, dest: Path, **options: Any
) -> errors.ProviderError:
    with pytest.raises(errors.ProviderError) as caught:
        await make_client(accept=client_accept).generate(generation(**options), dest)
    assert_no_key(caught.value)
    assert not dest.exists()
    return caught.value


@pytest.mark.parametrize(
    ("behaviour", "error", "reason", "status"),
    [
        (Status(400, {"name": "bad_request", "errors": ["prompt: cannot be empty"]}), errors.BadRequest,
         FailureReason.REJECTED, 400),
        (Status(422, {"name": "invalid_request", "errors": ["style_preset: not here"]}), errors.BadRequest,
         FailureReason.REJECTED, 422),
        (Status(401), errors.AuthenticationFailed, FailureReason.ACCOUNT, 401),
        (Status(402), errors.PaymentRequired, FailureReason.ACCOUNT, 402),
        (Status(403), errors.ContentModerated, FailureReason.MODERATION, 403),  # name content_moderation
        (Status(403, {"name": "forbidden", "errors": ["key revoked"]}), errors.AuthenticationFailed,
         FailureReason.ACCOUNT, 403),
        (Status(413), errors.PayloadTooLarge, FailureReason.REJECTED, 413),
        (Status(429), errors.RateLimited, FailureReason.RATE_LIMITED, 429),
        (Status(500), errors.ServerError, FailureReason.UNAVAILABLE, 500),
        (Status(503), errors.ServerError, FailureReason.UNAVAILABLE, 503),  # the fake's nginx HTML page
        (Status(502, HTML_PAGE), errors.ServerError, FailureReason.UNAVAILABLE, 502),
        (Status(400, HTML_PAGE), errors.BadRequest, FailureReason.REJECTED, 400),
    ],
)  # fmt: skip
@pytest.mark.parametrize("accept", ["image/*", JSON])
async def test_error_statuses_map_to_their_exception(
    fake: FakeStability,
    make_client: MakeClient,
    tmp_path: Path,
    accept: str,
    behaviour: Status,
    error: type[errors.ProviderError],
    reason: FailureReason,
    status: int,
) -> None:
    fake.queue(behaviour)

    exc = await fail(accept, make_client, tmp_path / "out.png")

    assert type(exc) is error
    assert (exc.reason, exc.status) == (reason, status)
    assert "<html" not in exc.to_failure().message.lower()


@pytest.mark.parametrize(
    ("behaviour", "said"),
    [
        (
            Status(400, {"name": "bad_request", "errors": ["prompt: cannot be empty"]}),
            "prompt: cannot be empty",
        ),
        (Status(422, {"name": "invalid_request", "errors": ["a", "b"]}), "a; b"),
    ],
)
async def test_a_rejection_shows_the_apis_own_words(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path, behaviour: Status, said: str
) -> None:
    fake.queue(behaviour)

    exc = await fail("image/*", make_client, tmp_path / "out.png")

    assert said in exc.to_failure().message


async def test_a_parameter_the_api_refuses_is_a_bad_request_with_its_message(
    make_client: MakeClient, tmp_path: Path
) -> None:
    # GenerationOptions.problems() would catch this before a real request: here it reaches the API.
    exc = await fail("image/*", make_client, tmp_path / "out.png", aspect_ratio="7:3")

    assert isinstance(exc, errors.BadRequest)
    assert "aspect_ratio" in exc.to_failure().message


async def test_a_v1_error_message_is_shown(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path
) -> None:
    fake.queue(Status(400, {"name": "invalid_prompts", "message": "text_prompts: too long"}))

    exc = await fail(JSON, make_client, tmp_path / "out.png", model=V1_ENGINE)

    assert isinstance(exc, errors.BadRequest)
    assert "text_prompts: too long" in exc.to_failure().message


@pytest.mark.parametrize(("headers", "retry_after"), [(None, None), ({"Retry-After": "7"}, 7.0)])
async def test_rate_limited_carries_retry_after_when_sent(
    fake: FakeStability,
    make_client: MakeClient,
    tmp_path: Path,
    headers: dict[str, str] | None,
    retry_after: float,
) -> None:
    fake.queue(Status(429, headers=headers))

    exc = await fail("image/*", make_client, tmp_path / "out.png")

    assert isinstance(exc, errors.RateLimited)
    assert exc.retry_after == retry_after
    assert exc.retryable


async def test_the_fakes_rate_limiter_blocks_the_key(make_client: MakeClient, tmp_path: Path) -> None:
    async with FakeStability(api_key=KEY, rate_limit=(1, 10), retry_after=True) as fake:
        client = make_client(base_url=fake.base_url)
        await client.generate(generation(), tmp_path / "first.png")
        with pytest.raises(errors.RateLimited) as caught:
            await client.generate(generation(), tmp_path / "second.png")

    assert caught.value.retry_after == 60.0


async def test_a_wrong_key_is_an_account_problem(make_client: MakeClient, tmp_path: Path) -> None:
    with pytest.raises(errors.AuthenticationFailed) as caught:
        await make_client(api_key="sk-wrong").generate(generation(), tmp_path / "out.png")

    assert caught.value.reason is FailureReason.ACCOUNT


async def test_running_out_of_credits_is_an_account_problem(make_client: MakeClient, tmp_path: Path) -> None:
    async with FakeStability(api_key=KEY, credits=1) as fake:
        with pytest.raises(errors.PaymentRequired):
            await make_client(base_url=fake.base_url).generate(generation(model="core"), tmp_path / "out.png")


@pytest.mark.parametrize("accept", ["image/*", JSON])
async def test_a_hang_is_cut_by_the_request_timeout(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path, accept: str
) -> None:
    fake.queue(Hang())

    with pytest.raises(errors.ProviderTimeout) as caught:
        await make_client(accept=accept, request_timeout=0.2).generate(generation(), tmp_path / "out.png")

    assert (caught.value.reason, caught.value.retryable) == (FailureReason.TIMED_OUT, True)
    assert_no_key(caught.value)


@pytest.mark.parametrize("accept", ["image/*", JSON])
@pytest.mark.parametrize("after_bytes", [None, 0, 40])
async def test_a_dropped_connection_is_unreachable_and_leaves_no_file(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path, accept: str, after_bytes: int | None
) -> None:
    fake.queue(Drop(after_bytes=after_bytes))

    exc = await fail(accept, make_client, tmp_path / "out.png")

    assert isinstance(exc, errors.ProviderUnreachable)
    assert (exc.reason, exc.retryable) == (FailureReason.UNAVAILABLE, True)


async def test_a_refused_connection_is_unreachable(make_client: MakeClient, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    exc = await fail(
        "image/*", lambda **kw: make_client(base_url=f"http://127.0.0.1:{port}", **kw), tmp_path / "x"
    )

    assert isinstance(exc, errors.ProviderUnreachable)


@pytest.mark.parametrize(
    ("accept", "model", "behaviour"),
    [
        ("image/*", "core", BadBody("text/html", HTML_PAGE)),
        ("image/*", "core", BadBody("image/png", b"")),
        ("image/*", "core", BadBody("image/png", b"this is not a png at all " * 40)),
        ("image/*", "core", BadBody("image/png", b"GIF89a")),
        ("image/*", "core", BadBody(JSON, b'{"image": ""}')),
        (JSON, "core", BadBody(JSON, b"not json")),
        (JSON, "core", BadBody(JSON, b'["a list"]')),
        (JSON, "core", BadBody(JSON, b'{"image": "%%% not base64 %%%", "finish_reason": "SUCCESS"}')),
        (JSON, "core", BadBody(JSON, b'{"image": "aGVsbG8gd29ybGQ=", "finish_reason": "SUCCESS"}')),
        (JSON, "core", BadBody("text/html", HTML_PAGE)),
        (JSON, V1_ENGINE, BadBody(JSON, b'{"artifacts": []}')),
        (JSON, V1_ENGINE, BadBody(JSON, b'{"artifacts": [{"seed": 1, "finishReason": "SUCCESS"}]}')),
    ],
)
async def test_a_success_status_with_a_bad_body_is_an_invalid_response(
    fake: FakeStability,
    make_client: MakeClient,
    tmp_path: Path,
    accept: str,
    model: str,
    behaviour: Behaviour,
) -> None:
    fake.queue(behaviour)

    exc = await fail(accept, make_client, tmp_path / "out.png", model=model)

    assert isinstance(exc, errors.InvalidResponse)
    assert exc.reason is FailureReason.UNAVAILABLE


async def test_the_key_stays_out_of_repr_messages_and_logs(
    fake: FakeStability, make_client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client()
    fake.queue(Status(400, {"name": f"echo {KEY}", "errors": [f"your key {KEY} is odd"]}))

    with pytest.raises(errors.BadRequest) as caught:
        await client.generate(generation(), tmp_path / "out.png")
    await client.generate(generation(), tmp_path / "ok.png")

    assert KEY not in repr(client)
    assert_no_key(caught.value)
    assert caplog.records  # the client does log at debug; none of it shows the key
    assert KEY not in caplog.text


async def test_balance_errors_use_the_same_mapping(make_client: MakeClient) -> None:
    with pytest.raises(errors.AuthenticationFailed) as caught:
        await make_client(api_key="sk-wrong").balance()

    assert_no_key(caught.value)
