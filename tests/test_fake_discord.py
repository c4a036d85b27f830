"""The fake Discord drives a real, unmodified discord.py ``commands.Bot`` end to end."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.http import Route

from tests.fakes.fake_discord import CallbackType, FakeDiscord
from tests.fakes.fake_discord.bodies import Body

pytestmark = pytest.mark.e2e

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64  # every byte value: proves the upload is binary-safe
TIMEOUT = 5.0


class TinyBot(commands.Bot):
    """One slash command that does what the real bot does: defer, followup with a file, edit, post."""

    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default())
        self.gate: asyncio.Event | None = None  # when set, /draw waits for it right after deferring
        self.outcomes: asyncio.Queue[Exception | None] = asyncio.Queue()
        self.tree.add_command(_draw_command())
        self.tree.add_command(_menu_command())

    async def setup_hook(self) -> None:
        self.add_view(PingView())
        await self.tree.sync()


class PingView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Ping", custom_id="tiny:ping")
    async def ping(self, interaction: discord.Interaction, button: discord.ui.Button[PingView]) -> None:
        await interaction.response.edit_message(content="pong", view=self)


def _draw_command() -> app_commands.Command[app_commands.Group, ..., None]:
    @app_commands.command(name="draw", description="Draw a picture")
    async def draw(
        interaction: discord.Interaction, prompt: str, edits: int = 1, replace: bool = False
    ) -> None:
        bot = interaction.client
        assert isinstance(bot, TinyBot)
        await interaction.response.defer(thinking=True)
        if bot.gate is not None:
            await bot.gate.wait()
        outcome: Exception | None = None
        try:
            await interaction.followup.send(
                f"{prompt} for {interaction.user.mention}",
                file=discord.File(io.BytesIO(IMAGE), "draw.png"),
                allowed_mentions=discord.AllowedMentions.none(),
            )
            for step in range(1, edits):
                await interaction.edit_original_response(content=f"{step}")
            if replace:
                final = discord.File(io.BytesIO(IMAGE[::-1]), "final.png")
                await interaction.edit_original_response(content=f"done: {prompt}", attachments=[final])
            else:
                await interaction.edit_original_response(content=f"done: {prompt}")
            assert isinstance(interaction.channel, discord.abc.Messageable)
            await interaction.channel.send(f"posted {prompt}")
        except discord.HTTPException as exc:
            outcome = exc
        bot.outcomes.put_nowait(outcome)

    return draw


def _menu_command() -> app_commands.Command[app_commands.Group, ..., None]:
    @app_commands.command(name="menu", description="A message with a button")
    async def menu(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("press it", view=PingView())

    return menu


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[TinyBot]:
    bot = TinyBot()
    async with fake.running(bot):
        yield bot


async def outcome_of(bot: TinyBot) -> Exception | None:
    return await asyncio.wait_for(bot.outcomes.get(), TIMEOUT)


async def test_login_syncs_the_command_schema(fake: FakeDiscord, bot: TinyBot) -> None:
    routes = [c.route for c in fake.rest_calls]
    assert routes[:3] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        "PUT /applications/{application_id}/commands",
    ]
    draw = next(c for c in fake.global_commands if c["name"] == "draw")
    assert {o["name"]: o["type"] for o in draw["options"]} == {"prompt": 3, "edits": 4, "replace": 5}
    assert fake.identify_payloads[0]["intents"] == discord.Intents.default().value
    assert bot.user is not None and bot.user.id == fake.bot_user_id


async def test_slash_command_defer_followup_edit_and_channel_message(fake: FakeDiscord, bot: TinyBot) -> None:
    pushed = await fake.push_slash_command("draw", {"prompt": "a cat"})

    assert await outcome_of(bot) is None
    record = fake.interaction(pushed.id)
    assert record.callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE
    assert record.ack_latency is not None and record.ack_latency < 3
    assert record.payload["data"]["options"] == [{"name": "prompt", "type": 3, "value": "a cat"}]
    original = record.original
    assert original is not None and not original.loading
    # Discord turns the first followup after a defer into the deferred response itself.
    assert original.completed_by_followup and record.followups == [original]
    image = original.attachment("draw.png")
    assert image.data == IMAGE and image.content_type == "image/png"
    assert original.allowed_mentions is not None and original.allowed_mentions["parse"] == []
    assert original.content == "done: a cat"
    assert [e.payload["content"] for e in original.edits] == ["done: a cat"]
    assert original.attachments == [image]  # an edit without attachments keeps them
    posted = fake.messages_in(fake.channel_id)[-1]
    assert (posted.origin, posted.content) == ("channel", "posted a cat")


async def test_injected_429_on_edit_is_retried_transparently(fake: FakeDiscord, bot: TinyBot) -> None:
    fake.fail_next("PATCH /webhooks/*/messages/@original", status=429, retry_after=0.05)

    pushed = await fake.push_slash_command("draw", {"prompt": "a dog"})

    assert await outcome_of(bot) is None
    assert fake.rate_limited_count == 1
    assert [c.status for c in fake.calls("PATCH /webhooks/*/messages/@original")] == [429, 200]
    original = fake.interaction(pushed.id).original
    assert original is not None and original.content == "done: a dog"


async def test_edit_with_a_new_file_replaces_the_attachments(fake: FakeDiscord, bot: TinyBot) -> None:
    pushed = await fake.push_slash_command("draw", {"prompt": "swap", "replace": True})

    assert await outcome_of(bot) is None
    assert pushed.payload["data"]["options"][1] == {"name": "replace", "type": 5, "value": True}
    original = fake.interaction(pushed.id).original
    assert original is not None and [a.filename for a in original.attachments] == ["final.png"]
    assert original.attachment("final.png").data == IMAGE[::-1]
    assert [u.filename for u in original.edits[-1].uploads] == ["final.png"]


async def test_guild_synced_command_is_resolved_by_guild(fake: FakeDiscord, bot: TinyBot) -> None:
    guild = discord.Object(id=fake.guild_id)
    bot.tree.copy_global_to(guild=guild)
    await bot.tree.sync(guild=guild)

    pushed = await fake.push_slash_command("draw", {"prompt": "here"})

    assert await outcome_of(bot) is None
    assert pushed.payload["data"]["guild_id"] == str(fake.guild_id)
    assert pushed.payload["data"]["id"] == fake.guild_commands[fake.guild_id][0]["id"]


async def test_expired_token_surfaces_as_50027(fake: FakeDiscord, bot: TinyBot) -> None:
    bot.gate = asyncio.Event()
    pushed = await fake.push_slash_command("draw", {"prompt": "late"})
    await fake.wait_for(lambda f: f.interaction(pushed.id).acknowledged, TIMEOUT)

    fake.expire_token(pushed.token)
    bot.gate.set()

    error = await outcome_of(bot)
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (401, 50027)


async def test_upload_over_the_limit_is_refused_with_40005(fake: FakeDiscord, bot: TinyBot) -> None:
    fake.upload_limit = len(IMAGE) - 1

    pushed = await fake.push_slash_command("draw", {"prompt": "huge"})

    error = await outcome_of(bot)
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (413, 40005)
    assert pushed.payload["attachment_size_limit"] == len(IMAGE) - 1


async def test_denied_channel_refuses_channel_messages_not_the_interaction(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    fake.deny_channel_permissions(fake.channel_id)

    pushed = await fake.push_slash_command("draw", {"prompt": "secret"})

    error = await outcome_of(bot)
    assert isinstance(error, discord.Forbidden) and error.code == 50013
    original = fake.interaction(pushed.id).original
    assert original is not None and original.content == "done: secret"
    assert int(pushed.payload["app_permissions"]) & (1 << 15) == 0  # no ATTACH_FILES announced


async def test_channel_history_pages_newest_first_and_can_be_denied(fake: FakeDiscord, bot: TinyBot) -> None:
    fake.create_message(fake.channel_id, "channel", Body({"content": "hi"}), author=fake.user_id)
    _, b, c, _ = [fake.create_message(fake.channel_id, "channel", Body({"content": n})) for n in "abcd"]
    fake.create_message(fake.guilds[fake.guild_id].channels[1].id, "channel", Body({"content": "elsewhere"}))

    async def page(limit: int, **query: int) -> list[str]:
        return [m["content"] for m in await bot.http.logs_from(fake.channel_id, limit, **query)]

    assert await page(2) == ["d", "c"]
    assert await page(2, after=b.id) == ["d", "c"]
    assert await page(2, before=c.id) == ["b", "a"]
    assert await page(3, around=c.id) == ["d", "c", "b"]
    channel = bot.get_partial_messageable(fake.channel_id, guild_id=fake.guild_id)
    oldest_first = [m async for m in channel.history(limit=100, after=b)]
    assert [m.content for m in oldest_first] == ["c", "d"]
    assert len(fake.calls("GET /channels/{channel_id}/messages")) == 5, "one request per page"
    (first,) = [m async for m in channel.history(limit=1, oldest_first=True)]
    assert (first.author.id, first.content) == (fake.user_id, "hi")
    with pytest.raises(discord.HTTPException) as too_many:
        await page(101)
    assert (too_many.value.status, too_many.value.code) == (400, 50035)

    fake.deny_history(fake.channel_id)
    with pytest.raises(discord.Forbidden) as no_history:
        await page(50)
    fake.deny_channel_permissions(fake.channel_id)
    with pytest.raises(discord.Forbidden) as no_permissions:
        await page(50)
    assert (no_history.value.code, no_permissions.value.code) == (50001, 50013)


async def test_dm_interaction_uses_user_and_dm_channel(fake: FakeDiscord, bot: TinyBot) -> None:
    pushed = await fake.push_slash_command("draw", {"prompt": "private"}, dm=True)

    assert await outcome_of(bot) is None
    assert "member" not in pushed.payload and pushed.payload["context"] == 1
    assert [m.content for m in fake.messages_in(pushed.channel_id)] == ["done: private", "posted private"]


async def test_edit_rate_limit_slows_a_bot_that_edits_too_fast(fake: FakeDiscord, bot: TinyBot) -> None:
    fake.enable_edit_rate_limit(limit=2, per=0.2)

    pushed = await fake.push_slash_command("draw", {"prompt": "busy", "edits": 3})

    assert await outcome_of(bot) is None
    assert fake.rate_limited_count == 1
    original = fake.interaction(pushed.id).original
    assert original is not None and [e.payload["content"] for e in original.edits] == ["1", "2", "done: busy"]


async def test_button_press_updates_the_message(fake: FakeDiscord, bot: TinyBot) -> None:
    menu = await fake.push_slash_command("menu")
    await fake.wait_for(lambda f: f.interaction(menu.id).original is not None, TIMEOUT)
    message = fake.interaction(menu.id).original
    assert message is not None and message.components[0]["components"][0]["custom_id"] == "tiny:ping"

    press = await fake.push_component("tiny:ping", message.id)

    await fake.wait_for(lambda f: message.content == "pong", TIMEOUT)
    assert press.callback_type == CallbackType.UPDATE_MESSAGE


async def test_gateway_reconnect_resumes_and_keeps_serving(fake: FakeDiscord, bot: TinyBot) -> None:
    await fake.request_reconnect()
    await fake.wait_for(lambda f: f.resume_payloads and f.gateway.active is not None, TIMEOUT)

    await fake.push_slash_command("draw", {"prompt": "again"})

    assert await outcome_of(bot) is None
    assert len(fake.identify_payloads) == 1


async def test_unknown_route_answers_discord_style_404(fake: FakeDiscord, bot: TinyBot) -> None:
    with pytest.raises(discord.NotFound):
        await bot.http.request(Route("GET", "/guilds/{guild_id}/bans", guild_id=fake.guild_id))
    assert [r.path for r in fake.unknown_routes] == [f"/guilds/{fake.guild_id}/bans"]


async def test_responses_are_exactly_application_json_and_need_the_token(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with session.get(fake.rest_base + "/users/@me", headers=headers) as ok:
            assert ok.headers["Content-Type"] == "application/json"
        async with session.get(fake.rest_base + "/users/@me") as refused:
            assert refused.status == 401


async def test_wrong_token_fails_login(fake: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()


async def test_patching_is_undone_on_exit() -> None:
    before = Route.BASE
    async with FakeDiscord() as fake:
        assert fake.rest_base == Route.BASE
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
    assert before == Route.BASE
