-- Dispatchable tasks of model ?1 after seq ?2, in dispatch order, past
-- their backoff at now ?4 (the same conditions as claim.sql).
SELECT t.id, t.model, t.priority, t.seq, j.tenant FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.state = 'queued' AND t.model = ?1 AND t.seq > ?2 AND NOT j.paused
  AND (t.not_before IS NULL OR t.not_before <= ?4)
ORDER BY t.seq LIMIT ?3
