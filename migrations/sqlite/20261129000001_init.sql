-- fresco's SQLite schema, the embedded twin of migrations/ (Postgres):
-- jobs, their tasks, the outputs of succeeded tasks, and the workers that
-- ran them. Translations: UUIDs are hyphenated lowercase TEXT, timestamps
-- INTEGER milliseconds since the Unix epoch, arrays and JSONB are JSON TEXT,
-- and a task's `seq` is its rowid (AUTOINCREMENT: never reused).

CREATE TABLE workers (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    device        TEXT NOT NULL,
    models        TEXT NOT NULL DEFAULT '[]' CHECK (json_type(models) = 'array'),
    loaded_models TEXT NOT NULL DEFAULT '[]' CHECK (json_type(loaded_models) = 'array'),
    registered_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    owner        TEXT NOT NULL DEFAULT '',
    model        TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    task_count   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX jobs_by_created_at ON jobs (created_at DESC);

CREATE TABLE tasks (
    -- dispatch order within a model's queue: the rowid, increasing per insert
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL,
    model            TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    prompt           TEXT NOT NULL,
    negative_prompt  TEXT NOT NULL,
    seed             INTEGER NOT NULL,
    steps            INTEGER NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    guidance         REAL NOT NULL,
    n                INTEGER NOT NULL,
    sampler          TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- the fencing token: bumped by every claim
    attempt          INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    worker_id        TEXT REFERENCES workers (id),
    lease_expires_at INTEGER,
    progress_step    INTEGER NOT NULL DEFAULT 0,
    -- a JSON array of {attempt, worker, message, at}
    errors           TEXT NOT NULL DEFAULT '[]' CHECK (json_type(errors) = 'array'),
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    UNIQUE (job_id, idx),
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);
CREATE INDEX tasks_queued_by_model ON tasks (model, seq) WHERE state = 'queued';
CREATE INDEX tasks_running_by_lease ON tasks (lease_expires_at) WHERE state = 'running';
CREATE INDEX tasks_by_job_state ON tasks (job_id, state);

CREATE TABLE outputs (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    key     TEXT NOT NULL UNIQUE,
    width   INTEGER NOT NULL,
    height  INTEGER NOT NULL,
    seed    INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    PRIMARY KEY (task_id, idx)
);
