-- Tasks that may still be queued: a running one that fails goes back to
-- the queue at its job's new priority.
UPDATE tasks SET priority = $2 WHERE job_id = $1 AND state IN ('queued', 'running')
