-- Ends up to 1000 leases whose heartbeats stopped before now (?1 in
-- milliseconds, ?2 the same as RFC 3339 text), each as a failed attempt of
-- kind `lease`: requeued after its backoff (base ?3 · 2^failures ms, at
-- most ?4, times a random factor in [0.5, 1)), or failed once attempts run
-- out, its error recording the message ?5. Each row names the lease that
-- ended (worker_id, attempt). SQLite has one writer at a time, so no row
-- locking is needed here.
UPDATE tasks SET
    failures = failures + 1,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempt, 'worker', coalesce(worker_id, ''),
        'message', ?5,
        'kind', 'lease',
        'at', ?2)),
    state = CASE WHEN failures + 1 >= max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN failures + 1 >= max_attempts THEN ?1 END,
    not_before = ?1 + CAST(min(?4, ?3 * (1 << min(failures, 40)))
                           * (0.5 + (abs(random()) % 1000000) / 2000000.0) AS INTEGER),
    lease_expires_at = NULL, attempt_ended_at = ?1
WHERE seq IN (SELECT seq FROM tasks
              WHERE state = 'running' AND lease_expires_at < ?1
              ORDER BY lease_expires_at LIMIT 1000)
RETURNING id, model, priority, seq, state, not_before, worker_id, attempt,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
