-- Fails up to 1000 tasks still queued once their job's deadline has
-- passed, each with an entry in its history naming the deadline. Running
-- tasks are left to finish. SKIP LOCKED: a task being claimed right now is
-- left for the next pass (the claim wins).
-- The due tasks are picked and locked once, in a CTE (a locking CTE is
-- evaluated once): as a subquery, a plan made on stale statistics could
-- run it again for every queued task.
WITH due AS MATERIALIZED (
    SELECT q.id FROM jobs d JOIN tasks q ON q.job_id = d.id
    WHERE d.deadline IS NOT NULL AND d.deadline <= now() AND q.state = 'queued'
    LIMIT 1000 FOR UPDATE OF q SKIP LOCKED
)
UPDATE tasks t SET
    state = 'failed', finished_at = now(), not_before = NULL,
    errors = t.errors || jsonb_build_array(jsonb_build_object(
        'attempt', t.attempt, 'worker', '', 'kind', 'deadline',
        'message', 'deadline '
                   || to_char(j.deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                   || ' passed while the task was still queued',
        'at', now()))
FROM due, jobs j
WHERE t.id = due.id AND j.id = t.job_id AND t.state = 'queued'
RETURNING t.id, t.model, t.priority, t.seq, t.job_id, j.tenant
