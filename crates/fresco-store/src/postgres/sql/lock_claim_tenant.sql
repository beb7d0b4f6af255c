-- Queued task $1 (as the dispatch queues hold it) and its tenant's
-- limits, when it has a running or a device-time limit; its row locked until the transaction ends, so two
-- claims of one tenant are checked one after the other.
SELECT t.id, t.model, t.priority, t.seq, j.tenant,
       tn.weight, tn.max_queued_tasks, tn.max_running_tasks, tn.max_device_seconds_per_day
FROM tasks t
JOIN jobs j ON j.id = t.job_id
JOIN tenants tn ON tn.name = j.tenant
WHERE t.id = $1 AND t.state = 'queued'
  AND (tn.max_running_tasks IS NOT NULL OR tn.max_device_seconds_per_day IS NOT NULL)
FOR UPDATE OF tn
