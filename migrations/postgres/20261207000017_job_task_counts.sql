-- A job's task counts per state, kept as tasks move instead of counted over
-- every task on each read. Each statement that inserts tasks or changes
-- their state appends its net change per (job, state) to
-- job_task_count_deltas (appends never wait on each other, so concurrent
-- claims of one job do not queue on a counter row); the coordinator folds
-- the deltas into job_task_counts every few seconds. A read sums the two.

CREATE TABLE job_task_counts (
    job_id UUID NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    state  TEXT NOT NULL,
    tasks  BIGINT NOT NULL,
    PRIMARY KEY (job_id, state)
);

-- No foreign key: a deleted job's deltas are dropped by the next fold.
CREATE TABLE job_task_count_deltas (
    job_id UUID NOT NULL,
    state  TEXT NOT NULL,
    delta  BIGINT NOT NULL
);
CREATE INDEX job_task_count_deltas_by_job ON job_task_count_deltas (job_id);

CREATE FUNCTION count_inserted_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_task_count_deltas (job_id, state, delta)
    SELECT job_id, state, count(*) FROM inserted_tasks GROUP BY job_id, state;
    RETURN NULL;
END
$$;

-- The rows before an update count -1 in their state, the rows after +1:
-- what an update left in its state sums to zero and is not recorded.
CREATE FUNCTION count_moved_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_task_count_deltas (job_id, state, delta)
    SELECT job_id, state, sum(delta) FROM (
        SELECT job_id, state, -1 AS delta FROM tasks_before
        UNION ALL
        SELECT job_id, state, 1 AS delta FROM tasks_after
    ) moved
    GROUP BY job_id, state
    HAVING sum(delta) <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_counted_on_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_tasks();

CREATE TRIGGER tasks_counted_on_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS tasks_before NEW TABLE AS tasks_after
    FOR EACH STATEMENT EXECUTE FUNCTION count_moved_tasks();

INSERT INTO job_task_counts (job_id, state, tasks)
SELECT job_id, state, count(*) FROM tasks GROUP BY job_id, state;

-- The queued tasks still in their retry backoff, read per job beside the counts.
CREATE INDEX tasks_backing_off_by_job ON tasks (job_id, not_before)
    WHERE state = 'queued' AND not_before IS NOT NULL;
