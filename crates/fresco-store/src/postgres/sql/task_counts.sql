-- Every model's tasks per state that the coordinator's gauges show:
-- queued, running and failed for good, and of the queued ones those due
-- (of an unpaused job, past their backoff: the same conditions as
-- claim.sql).
SELECT t.model, t.state, count(*) AS tasks,
    count(*) FILTER (WHERE t.state = 'queued' AND NOT j.paused
                     AND (t.not_before IS NULL OR t.not_before <= now())) AS due
FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.state IN ('queued', 'running', 'failed')
GROUP BY t.model, t.state
