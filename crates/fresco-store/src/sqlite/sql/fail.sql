-- Fenced (?1 task, ?2 worker, ?3 attempt). ?4: the message; ?5: give the
-- task back without counting a failure; ?6: now in milliseconds, ?7 the
-- same as the RFC 3339 text the history holds; ?10: the failure's kind;
-- ?11: whether another attempt may succeed (false for a request the model
-- cannot run). A counted failure is added to the history and fails the
-- task when it may not be retried or attempts run out, else requeues it
-- after its backoff: base ?8 · 2^failures ms (the count before this one),
-- at most ?9, times a random factor in [0.5, 1) so tasks that failed
-- together do not come back together. The right-hand sides read the row
-- as it was.
UPDATE tasks SET
    failures = failures + CASE WHEN ?5 THEN 0 ELSE 1 END,
    errors = CASE WHEN ?5 THEN errors ELSE json_insert(errors, '$[#]',
        json_object('attempt', attempt, 'worker', ?2, 'message', ?4,
                    'at', ?7, 'kind', ?10)) END,
    state = CASE WHEN NOT ?5 AND (NOT ?11 OR failures + 1 >= max_attempts)
                 THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN NOT ?5 AND (NOT ?11 OR failures + 1 >= max_attempts)
                       THEN ?6 END,
    not_before = CASE WHEN ?5 THEN NULL ELSE
        ?6 + CAST(min(?9, ?8 * (1 << min(failures, 40)))
                  * (0.5 + (abs(random()) % 1000000) / 2000000.0) AS INTEGER)
        END,
    lease_expires_at = NULL, attempt_ended_at = ?6
WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND state = 'running'
RETURNING id, model, priority, seq, state, not_before,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
