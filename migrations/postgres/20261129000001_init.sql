-- fresco's Postgres schema: jobs, their tasks, the outputs of succeeded
-- tasks, and the workers that ran them.

CREATE TABLE workers (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    device        TEXT NOT NULL,
    models        TEXT[] NOT NULL DEFAULT '{}',
    loaded_models TEXT[] NOT NULL DEFAULT '{}',
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL DEFAULT '',
    owner        TEXT NOT NULL DEFAULT '',
    model        TEXT NOT NULL,
    priority     INT NOT NULL DEFAULT 0,
    max_attempts INT NOT NULL CHECK (max_attempts > 0),
    task_count   BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX jobs_by_created_at ON jobs (created_at DESC);

CREATE TABLE tasks (
    id               UUID PRIMARY KEY,
    job_id           UUID NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx              INT NOT NULL,
    -- dispatch order within a model's queue
    seq              BIGINT GENERATED ALWAYS AS IDENTITY,
    model            TEXT NOT NULL,
    priority         INT NOT NULL,
    prompt           TEXT NOT NULL,
    negative_prompt  TEXT NOT NULL,
    seed             BIGINT NOT NULL,
    steps            INT NOT NULL,
    width            INT NOT NULL,
    height           INT NOT NULL,
    guidance         REAL NOT NULL,
    n                INT NOT NULL,
    sampler          TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- the fencing token: bumped by every claim
    attempt          INT NOT NULL DEFAULT 0,
    failures         INT NOT NULL DEFAULT 0,
    max_attempts     INT NOT NULL,
    worker_id        UUID REFERENCES workers (id),
    lease_expires_at TIMESTAMPTZ,
    progress_step    INT NOT NULL DEFAULT 0,
    errors           JSONB NOT NULL DEFAULT '[]',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    UNIQUE (job_id, idx),
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);
CREATE INDEX tasks_queued_by_model ON tasks (model, seq) WHERE state = 'queued';
CREATE INDEX tasks_running_by_lease ON tasks (lease_expires_at) WHERE state = 'running';
CREATE INDEX tasks_by_job_state ON tasks (job_id, state);

CREATE TABLE outputs (
    task_id UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    idx     INT NOT NULL,
    attempt INT NOT NULL,
    key     TEXT NOT NULL UNIQUE,
    width   INT NOT NULL,
    height  INT NOT NULL,
    seed    BIGINT NOT NULL,
    bytes   BIGINT NOT NULL,
    PRIMARY KEY (task_id, idx)
);
