"""The front door stays accurate: every setting the code reads is in .env.example and the README."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def settings_read_by_the_code() -> set[str]:
    source = (ROOT / "bot" / "config.py").read_text()
    return set(re.findall(r'reader\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', source))


def test_the_code_reads_settings() -> None:
    assert {"DISCORD_TOKEN", "STABILITY_API_KEY", "MAX_PROMPTS"} <= settings_read_by_the_code()


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_setting_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    missing = sorted(name for name in settings_read_by_the_code() if name not in text)
    assert missing == []


def test_env_example_documents_nothing_the_code_does_not_read() -> None:
    names = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert names - settings_read_by_the_code() == set()


def test_readme_gives_the_two_setup_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python -m bot" in readme
    assert "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest" in readme
    assert ".venv/bin/pytest" in (ROOT / ".ci" / "run").read_text()
