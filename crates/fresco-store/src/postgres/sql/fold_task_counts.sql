-- Folds every task-count delta this snapshot sees into job_task_counts and
-- deletes it, in one statement: a reader sees the deltas or their sum, never
-- both. Deltas appended meanwhile stay for the next fold; those of deleted
-- jobs are dropped. Rows are written in key order, so two folds never wait
-- on each other in a cycle. Returns how many deltas it folded.
WITH folded AS (
    DELETE FROM job_task_count_deltas RETURNING job_id, state, delta
), summed AS (
    SELECT job_id, state, sum(delta)::BIGINT AS delta FROM folded GROUP BY job_id, state
), written AS (
    INSERT INTO job_task_counts (job_id, state, tasks)
    SELECT s.job_id, s.state, s.delta FROM summed s
    WHERE s.delta <> 0 AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = s.job_id)
    ORDER BY s.job_id, s.state
    ON CONFLICT (job_id, state) DO UPDATE SET tasks = job_task_counts.tasks + excluded.tasks
    RETURNING 1
)
SELECT (SELECT count(*) FROM folded) AS deltas
