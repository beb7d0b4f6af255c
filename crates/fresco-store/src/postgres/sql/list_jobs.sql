-- $4: labels every job must carry, as a JSON object ('{}': any job).
-- $5: a job-level state (NULL: any), as fresco_core::JobState names it.
-- $6: a model (NULL: any).
-- $7: lower-cased text the job's id starts with, or its name or a task's prompt contains (NULL: any).
-- $8: list only jobs after this one in the order below (NULL: from the newest).
SELECT j.id, j.name, j.owner, j.model, j.priority, j.max_attempts, j.task_count, j.created_at,
       j.paused, j.deadline, j.tenant, j.labels, j.sweep::TEXT AS sweep
FROM jobs j
WHERE ($2::TEXT IS NULL OR j.owner = $2) AND ($3::TEXT IS NULL OR j.tenant = $3)
  AND j.labels @> $4::JSONB
  AND ($6::TEXT IS NULL OR j.model = $6)
  AND ($7::TEXT IS NULL OR strpos(j.id::TEXT, $7) = 1 OR strpos(lower(j.name), $7) > 0
       OR EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND strpos(lower(t.prompt), $7) > 0))
  AND ($8::UUID IS NULL OR (j.created_at, j.id) < (SELECT a.created_at, a.id FROM jobs a WHERE a.id = $8))
  AND ($5::TEXT IS NULL OR CASE $5::TEXT
    WHEN 'active' THEN EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
    WHEN 'queued' THEN NOT j.paused AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'queued')
                       AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running')
    WHEN 'running' THEN EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running')
    WHEN 'paused' THEN j.paused AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
    WHEN 'finished' THEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
    WHEN 'succeeded' THEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state <> 'succeeded')
    WHEN 'failed' THEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
                       AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'failed')
    WHEN 'cancelled' THEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running', 'failed'))
                          AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'cancelled')
    ELSE FALSE END)
ORDER BY j.created_at DESC, j.id DESC LIMIT $1
