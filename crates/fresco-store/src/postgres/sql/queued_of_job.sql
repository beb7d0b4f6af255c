SELECT id, model, priority, seq FROM tasks WHERE job_id = $1 AND state = 'queued'
