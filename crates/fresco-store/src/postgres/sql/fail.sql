-- Fenced ($1 task, $2 worker, $3 attempt). $4: the message; $5: give the
-- task back without counting a failure; $8: the failure's kind; $9:
-- whether another attempt may succeed (false for a request the model
-- cannot run). A counted failure is added to the history and fails the
-- task when it may not be retried or attempts run out, else requeues it
-- after its backoff: base $6 · 2^failures seconds (the count before this
-- one), at most $7, times a random factor in [0.5, 1) so tasks that failed
-- together do not come back together. The right-hand sides read the row
-- as it was.
UPDATE tasks SET
    failures = failures + CASE WHEN $5 THEN 0 ELSE 1 END,
    errors = CASE WHEN $5 THEN errors ELSE errors || jsonb_build_array(
        jsonb_build_object('attempt', attempt, 'worker', $2::TEXT,
                           'message', $4::TEXT, 'at', now(), 'kind', $8::TEXT)) END,
    state = CASE WHEN NOT $5 AND (NOT $9 OR failures + 1 >= max_attempts)
                 THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN NOT $5 AND (NOT $9 OR failures + 1 >= max_attempts)
                       THEN now() END,
    not_before = CASE WHEN $5 THEN NULL ELSE
        now() + make_interval(secs => least($7::FLOAT8,
            $6::FLOAT8 * power(2.0::FLOAT8, least(failures, 40))) * (0.5 + random() / 2))
        END,
    lease_expires_at = NULL, attempt_ended_at = now()
WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND state = 'running'
RETURNING id, model, priority, seq, state, not_before,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
