-- Ends up to 1000 leases whose heartbeats stopped, each as a failed
-- attempt of kind `lease`: requeued after its backoff (base $1 ·
-- 2^failures seconds, at most $2, times a random factor in [0.5, 1)), or
-- failed once attempts run out; $3 is the message its error records. Each
-- row names the lease that ended (worker_id, attempt). SKIP LOCKED: two
-- coordinators reaping at once take different rows, and a task being
-- reported on right now is left for the next pass.
-- The stale leases are picked and locked once, in a CTE (a locking CTE is
-- evaluated once, whatever plan the statistics suggest).
WITH stale AS MATERIALIZED (
    SELECT id AS stale_id FROM tasks
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED
)
UPDATE tasks SET
    failures = failures + 1,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'attempt', attempt, 'worker', coalesce(worker_id::TEXT, ''),
        'message', $3::TEXT,
        'kind', 'lease',
        'at', now())),
    state = CASE WHEN failures + 1 >= max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN failures + 1 >= max_attempts THEN now() END,
    not_before = now() + make_interval(secs => least($2::FLOAT8,
        $1::FLOAT8 * power(2.0::FLOAT8, least(failures, 40))) * (0.5 + random() / 2)),
    lease_expires_at = NULL, attempt_ended_at = now()
FROM stale
WHERE tasks.id = stale.stale_id
RETURNING id, model, priority, seq, state, not_before, worker_id, attempt,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
