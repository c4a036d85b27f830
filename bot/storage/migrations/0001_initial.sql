-- Jobs, their generations, and per-guild settings.
-- Times are seconds since the epoch (REAL), taken when the event was recorded.
-- Discord ids (guild, channel, message) are INTEGER: a snowflake fits in SQLite's signed 64 bits.
-- Statuses are the engine's enum values ('running', 'succeeded', ...). They carry no CHECK constraint on
-- purpose: SQLite cannot alter a CHECK without rebuilding the table, and new statuses are likely.

CREATE TABLE jobs (
    id                      TEXT PRIMARY KEY,           -- the 8-character job id users type into /job
    requester_id            TEXT NOT NULL,              -- Discord user id, or 'cli'
    requester_name          TEXT NOT NULL,
    guild_id                INTEGER,                    -- NULL in direct messages and on the command line
    channel_id              INTEGER,
    prompt_count            INTEGER NOT NULL CHECK (prompt_count > 0),
    model                   TEXT NOT NULL,
    aspect_ratio            TEXT NOT NULL,
    negative_prompt         TEXT,
    style                   TEXT,
    seed                    INTEGER,                    -- as asked; NULL: a random seed per prompt
    status                  TEXT NOT NULL,
    created_at              REAL NOT NULL,
    started_at              REAL,                       -- when its first generation started
    finished_at             REAL,
    estimated_credits       REAL,                       -- prompts × the model's price per image
    -- Discord delivery, so a restarted bot can still finish answering.
    interaction_token       TEXT,                       -- a secret for 15 minutes: never log it
    interaction_expires_at  REAL,
    progress_channel_id     INTEGER,
    progress_message_id     INTEGER
);

-- Recent jobs of a user (/history), and per-user quotas.
CREATE INDEX jobs_by_requester ON jobs (requester_id, created_at);
-- Per-guild history and quotas.
CREATE INDEX jobs_by_guild ON jobs (guild_id, created_at);
-- Unfinished jobs at start-up (crash recovery), dashboards by status.
CREATE INDEX jobs_by_status ON jobs (status, created_at);

CREATE TABLE generations (
    job_id              TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx                 INTEGER NOT NULL CHECK (idx >= 0),  -- the prompt's position in the job, from 0
    prompt              TEXT NOT NULL,
    seed                INTEGER NOT NULL,                   -- planned, then the one the image reports
    status              TEXT NOT NULL,
    failure_reason      TEXT,                               -- a FailureReason value
    failure_message     TEXT,                               -- safe to show the user
    failure_detail      TEXT,                               -- for the operator only
    image_path          TEXT,
    image_format        TEXT,
    width               INTEGER,
    height              INTEGER,
    size_bytes          INTEGER,
    queued_at           REAL NOT NULL,
    started_at          REAL,
    finished_at         REAL,
    posted_message_id   INTEGER,                            -- the Discord message carrying the image
    posted_at           REAL,
    attempts            INTEGER NOT NULL DEFAULT 0,         -- times it was started (a resumed run counts again)
    PRIMARY KEY (job_id, idx)
);

-- Images made since a time (quotas per day); the join to jobs narrows it to a user or a guild.
CREATE INDEX generations_succeeded ON generations (finished_at) WHERE status = 'succeeded';

CREATE TABLE guild_settings (
    guild_id    INTEGER PRIMARY KEY,
    settings    TEXT NOT NULL CHECK (json_valid(settings) AND json_type(settings) = 'object'),
    updated_at  REAL NOT NULL
);
