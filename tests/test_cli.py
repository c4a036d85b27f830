"""`python -m bot imagine` and `python -m bot check` end to end: the real CLI in a subprocess, talking to the
fake Stability server that runs in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes.stability import FakeStability, Hang, Status

REPO_ROOT = Path(__file__).resolve().parents[1]
# Distinctive, so a leak anywhere (a message, a log line, a traceback) is found by a plain substring search.
KEY = "sk-cli-5ecret-KEY-n3ver-sh0wn"
PROMPTS = 'a red fox, "a castle, at dusk", robotic dog'
PARSED = ["a red fox", "a castle, at dusk", "robotic dog"]
RUN_SECONDS = 10.0  # a run that takes longer is stuck: fail instead of hanging the suite


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Runs `python -m bot ...` in `cwd` with a minimal environment (nothing of the developer's leaks in)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env

    async def start(
        self, *args: str, env: Mapping[str, str | None] | None = None
    ) -> asyncio.subprocess.Process:
        merged = dict(self.env)
        for name, value in (env or {}).items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        with sigint_deliverable():
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                *args,
                cwd=self.cwd,
                env=merged,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )

    async def run(self, *args: str, env: Mapping[str, str | None] | None = None) -> Run:
        started = time.monotonic()
        return await finish(await self.start(*args, env=env), started)


async def finish(proc: asyncio.subprocess.Process, started: float, stdout_so_far: str = "") -> Run:
    try:
        async with asyncio.timeout(RUN_SECONDS):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the CLI was still running after {RUN_SECONDS:g}s") from None
    assert proc.returncode is not None
    run = Run(proc.returncode, stdout_so_far + out.decode(), err.decode(), time.monotonic() - started)
    assert KEY not in run.output, "the API key was printed"
    return run


@contextlib.contextmanager
def sigint_deliverable() -> Iterator[None]:
    """A child inherits an ignored SIGINT (`nohup`, `cmd &` in a script); the CLI under test must get it."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


@pytest.fixture
async def fake() -> AsyncIterator[FakeStability]:
    async with FakeStability(api_key=KEY, latency=0.0) as server:
        yield server


@pytest.fixture
def cli(tmp_path: Path, fake: FakeStability) -> Cli:
    return Cli(
        tmp_path,
        {
            "PATH": os.environ.get("PATH", os.defpath),
            "PYTHONPATH": str(REPO_ROOT),
            "STABILITY_API_BASE": fake.base_url,
            "STABILITY_API_KEY": KEY,
            "DATA_DIR": str(tmp_path / "data"),
        },
    )


def saved_images(folder: Path) -> list[Path]:
    """The finished images in `folder` (scratch files start with a dot), each checked to be a whole PNG."""
    found = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for path in found:
        with Image.open(path) as image:
            assert image.format == "PNG", path
            image.verify()
    return found


def done_paths(stdout: str) -> dict[str, str]:
    """`✔ 2. a castle, at dusk — done in 0.1s → out/x.png` lines as {prompt: path}."""
    return dict(re.findall(r"^✔ \d+\. (.+) — done in [\d.]+s → (.+)$", stdout, re.MULTILINE))


def database_rows(tmp_path: Path) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    conn = sqlite3.connect(tmp_path / "data" / "imagine.sqlite3")
    try:
        conn.row_factory = sqlite3.Row
        jobs = conn.execute("SELECT * FROM jobs").fetchall()
        generations = conn.execute("SELECT * FROM generations ORDER BY idx").fetchall()
    finally:
        conn.close()
    return jobs, generations


# --- imagine: success and failure -----------------------------------------------------------------------


async def test_every_prompt_gives_a_png_and_the_api_gets_every_option(
    cli: Cli, fake: FakeStability, tmp_path: Path
) -> None:
    run = await cli.run(
        "imagine", PROMPTS, "--out", "images", "--model", "sd3.5-large", "--aspect-ratio", "16:9",
        "--negative-prompt", "blurry", "--style", "anime", "--seed", "41",
    )  # fmt: skip

    assert run.code == 0, run.output
    assert len(saved_images(tmp_path / "images")) == 3
    assert sorted(str(r.prompt) for r in fake.requests) == sorted(PARSED), "exactly one request per prompt"
    forms = {r.prompt: r.form for r in fake.requests}
    for seed, prompt in enumerate(PARSED, start=41):
        assert forms[prompt] == {
            "prompt": prompt,
            "model": "sd3.5-large",
            "negative_prompt": "blurry",
            "aspect_ratio": "16:9",
            "seed": str(seed),
            "output_format": "png",
            "style_preset": "anime",
        }
    paths = done_paths(run.stdout)
    assert sorted(paths) == sorted(PARSED)
    assert all((tmp_path / path).is_file() for path in paths.values())
    assert re.search(r"^Job \w{8}: 3/3 image\(s\) saved in [\d.]+s\.$", run.stdout, re.MULTILINE)


async def test_a_moderated_prompt_fails_alone_and_says_why(
    cli: Cli, fake: FakeStability, tmp_path: Path
) -> None:
    fake.on_prompt("forbidden", Status(403))  # the real API's 403 body: name content_moderation
    run = await cli.run("imagine", "a red fox, forbidden thing, robotic dog", "--out", "images")

    assert run.code == 1, run.output
    assert len(saved_images(tmp_path / "images")) == 2
    assert sorted(done_paths(run.stdout)) == ["a red fox", "robotic dog"]
    assert "✘ 2. forbidden thing — failed: blocked by content moderation" in run.stdout
    assert "2/3 image(s) saved, 1 failed" in run.stdout


async def test_a_hanging_api_times_out_and_the_rest_is_kept(
    cli: Cli, fake: FakeStability, tmp_path: Path
) -> None:
    fake.on_prompt("hang", Hang())
    run = await cli.run(
        "imagine", "a red fox, hang forever", "--out", "images", env={"GENERATION_TIMEOUT": "1"}
    )

    assert run.code == 1, run.output
    assert "✘ 2. hang forever — failed: timed out" in run.stdout
    assert len(saved_images(tmp_path / "images")) == 1
    assert run.seconds < 3


async def test_the_database_records_the_job(cli: Cli, fake: FakeStability, tmp_path: Path) -> None:
    fake.on_prompt("forbidden", Status(403))
    run = await cli.run("imagine", "a red fox, forbidden thing", "--out", "images", "--seed", "7")
    assert run.code == 1, run.output

    jobs, generations = database_rows(tmp_path)
    (job,) = jobs
    assert (job["requester_id"], job["status"], job["prompt_count"], job["seed"]) == ("cli", "partial", 2, 7)
    assert job["finished_at"] is not None
    assert job["id"] in run.stdout  # the summary names the job the database knows
    assert [(g["prompt"], g["status"], g["failure_reason"]) for g in generations] == [
        ("a red fox", "succeeded", None),
        ("forbidden thing", "failed", "moderation"),
    ]
    assert (tmp_path / generations[0]["image_path"]).is_file()


async def test_the_demo_provider_needs_no_key(cli: Cli, fake: FakeStability, tmp_path: Path) -> None:
    env = {"IMAGE_PROVIDER": "demo", "DEMO_DELAY": "0", "STABILITY_API_KEY": None}
    run = await cli.run("imagine", PROMPTS, "--out", "images", env=env)

    assert run.code == 0, run.output
    assert len(saved_images(tmp_path / "images")) == 3
    assert fake.requests == []


async def test_settings_come_from_the_dotenv_in_the_current_folder_and_the_environment_wins(
    cli: Cli, fake: FakeStability, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("IMAGE_PROVIDER=demo\nDEMO_DELAY=0\nMAX_PROMPTS=1\n", encoding="utf-8")
    run = await cli.run("imagine", "a red fox, robotic dog", "--out", "images", env={"MAX_PROMPTS": "2"})

    assert run.code == 0, run.output
    assert len(saved_images(tmp_path / "images")) == 2
    assert fake.requests == [], "IMAGE_PROVIDER=demo from .env was used"


# --- imagine: nothing is sent when the input or the settings are wrong ----------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(['a red fox, "a castle'], {}, "never closed", id="unbalanced-quote"),
        pytest.param(["a, b, c"], {"MAX_PROMPTS": "2"}, "the limit is 2", id="too-many-prompts"),
        pytest.param([",  ,"], {}, "No prompt given", id="no-prompt"),
        pytest.param(["a red fox", "--seed", "abc"], {}, "invalid int value: 'abc'", id="seed-not-a-number"),
        pytest.param(["a red fox", "--seed", "-1"], {}, "Seed must be between 0 and", id="seed-negative"),
        pytest.param(["a red fox", "--seed", "4294967295"], {}, "Seed must be between", id="seed-too-big"),
        pytest.param(["a red fox", "--style", "cubist"], {}, "invalid choice: 'cubist'", id="unknown-style"),
    ],
)
async def test_bad_input_exits_2_before_calling_the_api(
    cli: Cli, fake: FakeStability, tmp_path: Path, args: list[str], env: dict[str, str | None], message: str
) -> None:
    run = await cli.run("imagine", *args, "--out", "images", env=env)

    assert run.code == 2, run.output
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert fake.requests == []
    assert not (tmp_path / "images").exists()


async def test_bad_settings_are_listed_together(cli: Cli, fake: FakeStability) -> None:
    run = await cli.run("imagine", "a red fox", env={"MAX_PROMPTS": "99", "STABILITY_API_KEY": None})

    assert run.code == 2
    assert "MAX_PROMPTS=99 is out of range" in run.stderr
    assert "STABILITY_API_KEY is not set" in run.stderr
    assert run.stdout == "" and "Traceback" not in run.stderr
    assert fake.requests == []


async def test_an_out_folder_that_is_a_file_exits_2(cli: Cli, fake: FakeStability, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder", encoding="utf-8")
    run = await cli.run("imagine", "a red fox", "--out", "taken")

    assert run.code == 2, run.output
    assert "cannot write images to taken" in run.stderr and "Traceback" not in run.stderr
    assert fake.requests == []


async def test_an_unusable_data_dir_exits_2(cli: Cli, fake: FakeStability, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder", encoding="utf-8")
    run = await cli.run("imagine", "a red fox", "--out", "images", env={"DATA_DIR": str(tmp_path / "taken")})

    assert run.code == 2, run.output
    assert "DATA_DIR=" in run.stderr and "Traceback" not in run.stderr
    assert fake.requests == []


# --- imagine: the key, the terminal, Ctrl-C -------------------------------------------------------------


async def test_the_key_is_never_shown_even_when_the_api_echoes_it(cli: Cli, fake: FakeStability) -> None:
    fake.on_prompt("echo", Status(400, {"name": "bad_request", "errors": [f"bad key {KEY}"]}))
    run = await cli.run("imagine", "a red fox, echo the key", "--out", "images", env={"LOG_LEVEL": "DEBUG"})

    assert run.code == 1, run.output
    assert "failed: rejected by the image API: bad key ***" in run.stdout
    assert "stability POST" in run.stderr, "DEBUG logging was on"
    # finish() checked every run's stdout and stderr for the key.


async def test_a_console_that_cannot_show_the_marks_still_gets_every_line(
    cli: Cli, fake: FakeStability, tmp_path: Path
) -> None:
    run = await cli.run(
        "imagine", "a red fox, robotic dog", "--out", "images", env={"PYTHONIOENCODING": "ascii"}
    )

    assert run.code == 0, run.output
    assert "? 1. a red fox ? done in" in run.stdout and "? 2. robotic dog ? done in" in run.stdout
    assert "Traceback" not in run.stderr


async def interrupt_while_hanging(cli: Cli, fake: FakeStability) -> Run:
    """Run two prompts, one hanging; press Ctrl-C once the other is done and the hanging one is sent."""
    fake.on_prompt("hang", Hang())
    started = time.monotonic()
    proc = await cli.start("imagine", "a red fox, hang forever", "--out", "images")
    assert proc.stdout is not None
    seen = ""
    async with asyncio.timeout(RUN_SECONDS):
        while not seen.startswith("✔ 1.") and "\n✔ 1." not in seen:
            line = (await proc.stdout.readline()).decode()
            assert line, f"the CLI ended early: {seen!r}"
            seen += line
        await fake.wait_requests(2)
    proc.send_signal(signal.SIGINT)
    return await finish(proc, started, seen)


async def test_ctrl_c_cancels_what_runs_and_keeps_what_is_done(
    cli: Cli, fake: FakeStability, tmp_path: Path
) -> None:
    run = await interrupt_while_hanging(cli, fake)

    assert run.code == 130, run.output
    assert "■ 2. hang forever — cancelled" in run.stdout
    assert re.search(r"^Job \w{8}: 1/2 image\(s\) saved, 1 cancelled in [\d.]+s\.$", run.stdout, re.MULTILINE)
    assert "Traceback" not in run.stderr
    assert len(saved_images(tmp_path / "images")) == 1


async def test_ctrl_c_leaves_the_job_recorded_as_cancelled(
    cli: Cli, fake: FakeStability, tmp_path: Path
) -> None:
    run = await interrupt_while_hanging(cli, fake)
    assert run.code == 130, run.output

    (job,), generations = database_rows(tmp_path)
    assert job["status"] == "cancelled" and job["finished_at"] is not None
    assert [g["status"] for g in generations] == ["succeeded", "cancelled"]


# --- check ----------------------------------------------------------------------------------------------


async def test_check_passes_with_the_right_key(cli: Cli, fake: FakeStability) -> None:
    run = await cli.run("check")

    assert run.code == 0, run.output
    assert "Stability API key: ok, 1,000,000 credits left" in run.stdout
    assert [r.path for r in fake.requests] == ["/v1/user/balance"]


async def test_check_fails_with_a_wrong_key(cli: Cli, fake: FakeStability) -> None:
    wrong = "sk-wrong-5ecret-n0t-shown-either"
    run = await cli.run("check", env={"STABILITY_API_KEY": wrong})

    assert run.code == 1, run.output
    assert "Stability API key: FAILED" in run.stdout
    assert "database: ok" in run.stdout
    assert wrong not in run.output and "Traceback" not in run.stderr
