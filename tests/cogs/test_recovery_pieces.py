"""The pure pieces of recovery and shutdown: a recorded job back to a snapshot, and what the bot says."""

from pathlib import Path

from bot.engine.errors import Failure, FailureReason
from bot.engine.models import GenerationStatus, ImageFile, JobStatus, Place, Requester
from bot.engine.options import GenerationOptions
from bot.storage.jobs import Delivery, GenerationRecord, JobRecord
from cogs.imagine import render
from cogs.imagine.recovery import progress_from_record, unposted_indexes

WALL = 1_700_000_000.0
IMAGE = ImageFile(Path("01.png"), "png", 64, 64, 100, 7)


def record() -> JobRecord:
    generations = (
        GenerationRecord("job23456", 0, "made and posted", 7, GenerationStatus.SUCCEEDED, WALL, WALL + 1,
                         WALL + 4, 1, image=IMAGE, posted_message_id=99),
        GenerationRecord("job23456", 1, "made, not posted", 8, GenerationStatus.SUCCEEDED, WALL, WALL + 1,
                         WALL + 5, 1, image=IMAGE),
        GenerationRecord("job23456", 2, "was running", 9, GenerationStatus.RUNNING, WALL, WALL + 2, None, 1),
        GenerationRecord("job23456", 3, "blocked", 10, GenerationStatus.FAILED, WALL, WALL + 1, WALL + 2, 1,
                         failure=Failure.of(FailureReason.MODERATION)),
        GenerationRecord("job23456", 4, "still queued", 11, GenerationStatus.QUEUED, WALL),
    )  # fmt: skip
    return JobRecord(
        "job23456",
        Requester("42", "Alice"),
        Place(1, 2),
        GenerationOptions(),
        len(generations),
        JobStatus.RUNNING,
        WALL,
        WALL + 1,
        None,
        15.0,
        Delivery("token", WALL + 900, 2, 1234),
        generations,
    )


def test_a_record_becomes_the_engines_snapshot_on_its_clock() -> None:
    progress = progress_from_record(record(), now=500.0, wall_now=WALL + 60)
    assert [g.status for g in progress.generations] == [
        GenerationStatus.SUCCEEDED,
        GenerationStatus.SUCCEEDED,
        GenerationStatus.QUEUED,  # it waits for a slot again
        GenerationStatus.FAILED,
        GenerationStatus.QUEUED,
    ]
    assert [g.seed for g in progress.generations] == [7, 8, 9, 10, 11]
    assert progress.started_at == 440.0  # a minute ago on the monotonic clock
    assert progress.generations[0].elapsed(500.0) == 3.0
    assert progress.generations[2].started_at is None
    assert progress.generations[3].failure == Failure.of(FailureReason.MODERATION)
    assert not progress.finished and progress.request.prompts[4] == "still queued"


def test_only_made_and_unposted_images_are_to_post() -> None:
    assert unposted_indexes(record()) == [1]


def test_the_paused_message_queues_what_ran_and_says_it_will_carry_on() -> None:
    progress = progress_from_record(record(), now=500.0, wall_now=WALL + 60)
    text = render.paused_text(progress, 500.0, WALL + 60)
    assert "⏳ 3. was running — queued" in text
    assert text.endswith("-# ⏸️ The bot is restarting: 2 unfinished prompts will carry on when it is back.")


def test_images_that_could_not_be_posted_are_not_counted_as_delivered() -> None:
    from dataclasses import replace

    progress = progress_from_record(record(), now=500.0, wall_now=WALL + 60)
    done = replace(progress, finished_at=510.0, status=JobStatus.PARTIAL)
    assert "2 of 5 images delivered" in render.summary_text(done, 510.0)
    summary = render.summary_text(done, 510.0, not_posted=1)
    assert "1 of 5 images delivered, 1 could not be posted, 1 failed" in summary


def test_the_private_notice_names_the_job_the_channel_and_the_fix() -> None:
    progress = progress_from_record(record(), now=500.0, wall_now=WALL + 60)
    text = render.undelivered_text(progress, 2)
    assert "job `job23456` (2 of 5 images made) in <#2>" in text
    assert "**Send Messages** and **Attach Files**" in text
