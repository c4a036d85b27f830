"""Starting the bot, publishing its commands, and what a user sees when the token is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.__main__ import main
from bot.client import run_bot, sync_commands
from bot.config import Settings
from tests.fakes.fake_discord import FakeDiscord

pytestmark = pytest.mark.e2e


def settings_for(fake: FakeDiscord, tmp_path: Path, **extra: str) -> Settings:
    env = {"DISCORD_TOKEN": fake.token, "IMAGE_PROVIDER": "demo", "DATA_DIR": str(tmp_path), **extra}
    return Settings.from_env(env)


async def test_a_rejected_token_ends_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeDiscord(token="the-right-token") as fake:
        settings = Settings.from_env(
            {"DISCORD_TOKEN": "a-wrong-token", "IMAGE_PROVIDER": "demo", "DATA_DIR": str(tmp_path)}
        )
        assert await run_bot(settings) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Discord rejected DISCORD_TOKEN")
    assert "Reset Token" in err and "\n" not in err
    assert "a-wrong-token" not in err
    assert fake.global_commands == []


def test_a_missing_token_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("DISCORD_TOKEN", "STABILITY_API_KEY", "IMAGE_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "DISCORD_TOKEN is not set" in err and "Traceback" not in err


async def test_sync_publishes_the_commands_globally(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        assert await sync_commands(settings_for(fake, tmp_path)) == 0
    (imagine,) = [c for c in fake.global_commands if c["name"] == "imagine"]
    options = {o["name"]: o for o in imagine["options"]}
    assert list(options) == ["prompts", "negative_prompt", "aspect_ratio", "style", "seed", "model"]
    assert all(o["description"] for o in options.values())
    assert options["prompts"]["required"] is True
    assert (options["seed"]["min_value"], options["seed"]["max_value"]) == (0, 4294967294)
    assert [c["value"] for c in options["aspect_ratio"]["choices"]][:2] == ["1:1", "16:9"]
    assert "core" in [c["value"] for c in options["model"]["choices"]]
    assert len(options["style"]["choices"]) == 17
    assert fake.guild_commands == {}, "no development server configured: nothing synced to one"


async def test_a_development_server_gets_the_commands_at_start(tmp_path: Path) -> None:
    from bot.app import open_services
    from bot.client import ImagineBot

    async with FakeDiscord() as fake:
        settings = settings_for(fake, tmp_path, DISCORD_DEV_GUILD_ID=str(fake.guild_id))
        async with open_services(settings) as services, fake.running(ImagineBot(services)):
            pass
    names = [c["name"] for c in fake.guild_commands[fake.guild_id]]
    assert names == ["imagine", "jobs", "job", "usage", "forget-me", "imagine-settings"]
    assert fake.global_commands == [], "global sync only through `python -m bot sync`"


async def test_imagine_is_offered_in_dms_and_as_a_user_installed_app(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        assert await sync_commands(settings_for(fake, tmp_path)) == 0
    (imagine,) = [c for c in fake.global_commands if c["name"] == "imagine"]
    assert sorted(imagine["contexts"]) == [0, 1, 2]  # servers, DMs with the bot, private channels
    assert sorted(imagine["integration_types"]) == [0, 1]  # installed on a server, or on a user's account
