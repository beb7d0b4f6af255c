-- Dispatchable tasks per model: queued, of an unpaused job, past their
-- backoff at now ?1 (the same conditions as claim.sql).
SELECT t.model, count(*) AS tasks FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.state = 'queued' AND NOT j.paused
  AND (t.not_before IS NULL OR t.not_before <= ?1)
GROUP BY t.model
