SELECT t.id, t.model, t.priority, t.seq, j.tenant
FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.job_id = ?1 AND t.state = 'queued'
