-- A job's task counts per state, kept as tasks move instead of counted over
-- every task on each read: triggers on tasks update job_task_counts in the
-- same transaction (SQLite has one writer, so a counter row never makes
-- writers wait on each other).

CREATE TABLE job_task_counts (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    state  TEXT NOT NULL,
    tasks  INTEGER NOT NULL,
    PRIMARY KEY (job_id, state)
);

INSERT INTO job_task_counts (job_id, state, tasks)
SELECT job_id, state, count(*) FROM tasks GROUP BY job_id, state;

CREATE TRIGGER tasks_counted_on_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO job_task_counts (job_id, state, tasks) VALUES (NEW.job_id, NEW.state, 1)
    ON CONFLICT (job_id, state) DO UPDATE SET tasks = tasks + 1;
END;

CREATE TRIGGER tasks_counted_on_update AFTER UPDATE OF state ON tasks
WHEN OLD.state <> NEW.state
BEGIN
    UPDATE job_task_counts SET tasks = tasks - 1
    WHERE job_id = OLD.job_id AND state = OLD.state;
    INSERT INTO job_task_counts (job_id, state, tasks) VALUES (NEW.job_id, NEW.state, 1)
    ON CONFLICT (job_id, state) DO UPDATE SET tasks = tasks + 1;
END;

-- The queued tasks still in their retry backoff, read per job beside the counts.
CREATE INDEX tasks_backing_off_by_job ON tasks (job_id, not_before)
    WHERE state = 'queued' AND not_before IS NOT NULL;
