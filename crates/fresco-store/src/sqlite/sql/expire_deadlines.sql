-- Fails up to 1000 tasks still queued once their job's deadline has passed
-- (?1: now in milliseconds, ?2 the same as RFC 3339 text), each with an
-- entry in its history naming the deadline. Running tasks are left to
-- finish.
UPDATE tasks SET
    state = 'failed', finished_at = ?1, not_before = NULL,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempt, 'worker', '', 'kind', 'deadline',
        'message', 'deadline ' || (SELECT strftime('%Y-%m-%dT%H:%M:%SZ', j.deadline / 1000, 'unixepoch')
                                   FROM jobs j WHERE j.id = tasks.job_id)
                   || ' passed while the task was still queued',
        'at', ?2))
WHERE seq IN (SELECT t.seq FROM jobs j JOIN tasks t ON t.job_id = j.id
              WHERE j.deadline IS NOT NULL AND j.deadline <= ?1 AND t.state = 'queued'
              LIMIT 1000)
RETURNING id, model, priority, seq, job_id,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
