import pytest

from bot.config import ConfigError, Secret, Settings

VALID = {"DISCORD_TOKEN": "tok.en.value", "STABILITY_API_KEY": "sk-secret-123"}


def test_defaults() -> None:
    s = Settings.from_env(VALID)
    assert (s.stability_api_base, s.stability_model, s.image_provider) == (
        "https://api.stability.ai",
        "core",
        "stability",
    )
    assert (s.max_prompts, s.max_concurrent_generations, s.generation_timeout) == (10, 10, 120.0)
    assert str(s.database_path) == "data/imagine.sqlite3"
    assert s.discord_dev_guild_id is None


def test_values_are_read_and_trimmed() -> None:
    s = Settings.from_env(
        {
            **VALID,
            "STABILITY_API_BASE": " http://127.0.0.1:9000/ ",
            "STABILITY_MODEL": "sd3.5-flash",
            "MAX_PROMPTS": "25",
            "MAX_CONCURRENT_GENERATIONS": "100",
            "GENERATION_TIMEOUT": "90.5",
            "LOG_LEVEL": "debug",
            "DATA_DIR": "/tmp/x",
            "DISCORD_DEV_GUILD_ID": "1234",
        }
    )
    assert s.stability_api_base == "http://127.0.0.1:9000"
    assert (s.stability_model, s.max_prompts, s.max_concurrent_generations) == ("sd3.5-flash", 25, 100)
    assert (s.generation_timeout, s.log_level, s.discord_dev_guild_id) == (90.5, "DEBUG", 1234)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "MAX_PROMPTS": "26",
                "MAX_CONCURRENT_GENERATIONS": "lots",
                "GENERATION_TIMEOUT": "0",
                "STABILITY_MODEL": "dall-e",
                "IMAGE_PROVIDER": "stability",
                "STABILITY_API_BASE": "api.stability.ai",
                "LOG_LEVEL": "loud",
                "DISCORD_DEV_GUILD_ID": "my server",
            }
        )
    problems = "\n".join(caught.value.problems)
    for name in (
        "DISCORD_TOKEN",
        "STABILITY_API_KEY",
        "MAX_PROMPTS=26",
        "MAX_CONCURRENT_GENERATIONS='lots'",
        "GENERATION_TIMEOUT=0",
        "STABILITY_MODEL='dall-e'",
        "STABILITY_API_BASE",
        "LOG_LEVEL",
        "DISCORD_DEV_GUILD_ID",
    ):
        assert name in problems
    assert len(caught.value.problems) == 9
    assert caught.value.render().startswith("imagine-bot cannot start")


def test_demo_provider_needs_no_key_and_cli_needs_no_token() -> None:
    s = Settings.from_env({"IMAGE_PROVIDER": "demo"}, need_discord=False)
    assert s.image_provider == "demo" and not s.stability_api_key


def test_secrets_never_show() -> None:
    s = Settings.from_env(VALID)
    for text in (repr(s), str(s), repr(s.discord_token), f"{s.stability_api_key}"):
        assert "sk-secret-123" not in text and "tok.en.value" not in text
    assert s.stability_api_key.reveal() == "sk-secret-123"
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")


def test_quotas_and_prices() -> None:
    s = Settings.from_env(
        {
            **VALID,
            "USER_MAX_ACTIVE_JOBS": "3",
            "USER_DAILY_IMAGE_QUOTA": "50",
            "GUILD_DAILY_IMAGE_QUOTA": "500",
            "GUILD_DAILY_CREDIT_BUDGET": "1000",
            "MODEL_CREDITS": "core=2.5, ultra=9",
        }
    )
    assert (s.user_max_active_jobs, s.user_daily_image_quota, s.guild_daily_image_quota) == (3, 50, 500)
    assert s.guild_daily_credit_budget == 1000
    assert (s.model_credits["core"], s.model_credits["ultra"], s.model_credits["sd3.5-flash"]) == (
        2.5,
        9,
        2.5,
    )
    defaults = Settings.from_env(VALID)
    assert (
        defaults.user_max_active_jobs,
        defaults.user_daily_image_quota,
        defaults.guild_daily_image_quota,
    ) == (2, 0, 0)


@pytest.mark.parametrize("value", ["dall-e=3", "core=-1", "core=cheap", "core"])
def test_bad_prices_are_reported(value: str) -> None:
    with pytest.raises(ConfigError, match="MODEL_CREDITS"):
        Settings.from_env({**VALID, "MODEL_CREDITS": value})
